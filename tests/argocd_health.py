"""Evaluate the FineTuneJob Argo CD health check the way Argo CD does.

Why a sandbox: Argo CD runs health scripts with gopher-lua (Lua 5.1 semantics) and opens
only the base, table, package and a "safe os" library (util/lua/lua.go) — no ``string``,
no ``math``. A script calling ``string.format`` passes under a full Lua but fails in a
real Argo CD, so the script runs here in ``lupa.lua51`` with exactly those libraries.
Used by the unit tests (Argo CD-format cases) and by the cluster lifecycle test (the
real operator's status at every step).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "charts" / "kubetune" / "argocd" / "health.lua"

#: The base functions of Lua 5.1 that Argo CD's VM has, minus the ones that load code
#: or files; ``os`` is reduced to time and date like Argo CD's "safe os".
SANDBOX = """
local script = ...
local base = {"assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal",
              "rawget", "rawset", "select", "setmetatable", "getmetatable", "tonumber",
              "tostring", "type", "unpack", "xpcall", "_VERSION"}
return function(obj)
  local env = {table = table, os = {time = os.time, date = os.date}, obj = obj}
  for _, name in ipairs(base) do env[name] = _G[name] end
  env._G = env
  local chunk = assert(loadstring(script, "health.lua"))
  setfenv(chunk, env)
  local hs = chunk()
  return hs.status, hs.message
end
"""


def _drop_nulls(value: Any) -> Any:
    """Argo CD hands Lua no entry for a JSON null; mirror that."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def evaluate(obj: dict[str, Any], script: str | None = None) -> tuple[str, str]:
    """(status, message) the health script returns for ``obj``, in a fresh Lua 5.1."""
    import lupa.lua51 as lua51

    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    if runtime.eval("_VERSION") != "Lua 5.1":
        raise RuntimeError("lupa.lua51 is not Lua 5.1")
    run = runtime.execute(SANDBOX, SCRIPT.read_text() if script is None else script)
    status, message = run(runtime.table_from(_drop_nulls(obj), recursive=True))
    return str(status), str(message)
