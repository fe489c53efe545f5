"""The one union style of the API: a discriminator field names the variant, and the
variant's settings live in a sibling block named after it.

``method: dpo`` with ``dpo: {...}``, ``adapter: {type: partial, partial: {...}}`` and
``{type: formatRegex, formatRegex: {...}}`` in ``reward.functions`` read alike, so a user
who has written one guesses the others. A block may serve more than one variant
(``adapter.lora`` is read by lora and qlora); fields every variant shares (a reward
function's ``weight``) stay next to the discriminator.

The rules here tie the blocks to the discriminator once, for every union, in Python
and CEL alike.
"""

from __future__ import annotations

from kubetune_contract.api.rules import Rule


def block_only_with(block: str, discriminator: str, variants: tuple[str, ...]) -> Rule:
    """The settings block ``block`` is refused unless ``discriminator`` is one of ``variants``
    (a block the variant ignores would be a silent no-op)."""
    allowed = ", ".join(variants)
    return Rule(
        field=block,
        message=f"{block} settings are only allowed with {discriminator} {allowed}",
        check=lambda m: getattr(m, block) is None or getattr(m, discriminator) in variants,
        cel=f"!has(self.{block}) || self.{discriminator} in "
        f"[{', '.join(repr(v) for v in variants)}]",
        reason="FieldValueForbidden",
    )


def block_required(block: str, discriminator: str, variant: str, holds: str) -> Rule:
    """``discriminator: variant`` needs its block ``block``, which ``holds`` what it can't
    default (a pattern to match, layers to unfreeze)."""
    return Rule(
        field=block,
        message=f"{discriminator} {variant} needs the {block} block ({holds})",
        check=lambda m: getattr(m, discriminator) != variant or getattr(m, block) is not None,
        cel=f"self.{discriminator} != '{variant}' || has(self.{block})",
        reason="FieldValueRequired",
    )
