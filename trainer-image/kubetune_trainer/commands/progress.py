"""The progress bar of a local run: one tqdm bar over optimizer steps, with the losses."""

from __future__ import annotations

from typing import Any, TextIO

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


class ProgressBar(TrainerCallback):
    """A tqdm bar over optimizer steps with the latest loss and eval loss."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.bar: Any = None
        self.postfix: dict[str, str] = {}

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=state.max_steps,
            initial=state.global_step,
            unit="step",
            file=self.stream,
            dynamic_ncols=True,
        )

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        for key, label in (("loss", "loss"), ("eval_loss", "eval")):
            if logs and key in logs:
                self.postfix[label] = f"{logs[key]:.3f}"
        if self.bar is not None:
            self.bar.set_postfix(self.postfix)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if self.bar is not None:
            self.bar.close()
