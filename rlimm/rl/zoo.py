"""The RL Zoo's tuned hyperparameters (``algo.hyperparams: zoo``).

The Zoo's YAML files (``rl_zoo3/hyperparams/{ppo,a2c,sac}.yml``, the optional extra ``rlimm[zoo]``) are
read from the installed package *without importing it* and parsed with ``yaml.safe_load``. Nothing in
them is evaluated as code: :func:`zoo_hyperparams` keeps the values as the YAML has them (a config
records them so), and :func:`constructor_kwargs` turns the Zoo's strings into objects when the agent is
built — ``lin_0.001`` into SB3's linear schedule (0.001 → 0 over training), ``"dict(net_arch=[64, 64],
activation_fn=nn.ReLU)"`` into a dict by a small parser that accepts only ``dict(...)``, ``{...}``,
lists, tuples, numbers, strings, booleans, ``None`` and the names of :data:`NAMES`.

Of an entry's other keys: ``n_envs`` sets ``algo.n_envs``, ``n_timesteps`` the budget of ``rlimm train``
when the config gives none, ``normalize`` ``algo.normalize`` (``VecNormalize`` of the training env,
with the algorithm's ``gamma`` as the Zoo does); ``policy`` must be ``MlpPolicy``; entries with
``env_wrapper``, ``frame_stack`` or ``callback`` are refused (rlimm does not apply the Zoo's wrappers
and callbacks, and a wrapper would change what the teacher sees).
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from rlimm.errors import RlimmError

#: The rlimm algorithms the Zoo has settings for.
ZOO_ALGOS = ("ppo", "a2c", "sac")
#: Keys the Zoo schedules with ``lin_<value>``.
SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf")
#: Keys whose Zoo value may be a ``dict(...)`` string.
DICT_KEYS = ("policy_kwargs", "replay_buffer_kwargs")
#: Entry keys that are not constructor arguments.
NOT_KWARGS = ("n_envs", "n_timesteps", "normalize", "policy")
#: Entry keys rlimm refuses: the Zoo's env wrappers and callbacks are not applied.
REFUSED = ("env_wrapper", "frame_stack", "callback", "replay_buffer_class")


#: The names a ``dict(...)`` string may use (``nn.ReLU`` …), resolved when the agent is built.
NAMES = ("nn.ReLU", "nn.Tanh", "nn.ELU", "nn.LeakyReLU", "nn.SiLU", "nn.GELU", "nn.Sigmoid", "nn.Identity")


def _names() -> dict[str, Any]:
    from torch import nn

    return {name: getattr(nn, name.removeprefix("nn.")) for name in NAMES}


@dataclass(frozen=True)
class ZooHyperparams:
    """One entry of the Zoo's YAML: constructor arguments (as the YAML has them) and the rest."""

    algo: str
    env_id: str
    kwargs: dict[str, Any]
    n_envs: int | None
    n_timesteps: int | None
    normalize: bool | dict[str, Any]


def zoo_folder() -> Path:
    """The installed ``rl_zoo3/hyperparams`` folder, found without importing ``rl_zoo3``."""
    spec = importlib.util.find_spec("rl_zoo3")
    if spec is None or not spec.submodule_search_locations:
        raise RlimmError("hyperparams: zoo needs the RL Zoo's settings: pip install -e '.[zoo]' (rl_zoo3)")
    return Path(next(iter(spec.submodule_search_locations))) / "hyperparams"


@cache
def zoo_file(algo: str) -> dict[str, Any]:
    """The Zoo's hyperparameters of ``algo`` by env id (``default`` and ``atari`` left out)."""
    if algo not in ZOO_ALGOS:
        raise RlimmError(
            f"the RL Zoo (hyperparams: zoo) has no settings for {algo}; it has {', '.join(ZOO_ALGOS)}"
        )
    entries = yaml.safe_load((zoo_folder() / f"{algo}.yml").read_text())
    return {env: entry for env, entry in entries.items() if env not in ("default", "atari")}


def _covered(envs: list[str], limit: int = 12) -> str:
    shown = ", ".join(envs[:limit])
    return shown + (f" … ({len(envs) - limit} more)" if len(envs) > limit else "")


def zoo_hyperparams(algo: str, env_id: str) -> ZooHyperparams:
    """The Zoo's entry for ``env_id`` and ``algo``; raises, naming the envs it covers, when it has none
    or uses what rlimm does not apply."""
    entries = zoo_file(algo)
    if env_id not in entries:
        raise RlimmError(
            f"the RL Zoo (hyperparams: zoo) has no {algo} settings for env '{env_id}'; it covers "
            f"{_covered(sorted(entries))}"
        )
    entry = dict(entries[env_id])
    refused = [key for key in REFUSED if key in entry]
    if refused:
        raise RlimmError(
            f"the RL Zoo's {algo} settings (hyperparams: zoo) for {env_id} use {', '.join(refused)}, "
            "which rlimm does not apply; give algo.kwargs instead"
        )
    policy = entry.get("policy", "MlpPolicy")
    if policy != "MlpPolicy":
        raise RlimmError(
            f"the RL Zoo's {algo} settings (hyperparams: zoo) for {env_id} use policy {policy}; rlimm "
            "takes MlpPolicy only"
        )
    normalize = entry.get("normalize", False)
    if isinstance(normalize, str):
        normalize = _literal(normalize, f"normalize of {env_id}")
    n_envs, n_timesteps = entry.get("n_envs"), entry.get("n_timesteps")
    return ZooHyperparams(
        algo=algo,
        env_id=env_id,
        kwargs={key: value for key, value in entry.items() if key not in NOT_KWARGS},
        n_envs=None if n_envs is None else int(n_envs),
        n_timesteps=None if n_timesteps is None else int(n_timesteps),
        normalize=normalize,
    )


# --- the Zoo's strings, turned into objects when the agent is built -----------------------------------


def _literal(text: str, what: str, names: dict[str, Any] | None = None) -> Any:
    """``text`` as a Python literal, ``dict(key=value, …)`` calls included, and the names of
    :data:`NAMES` (given as ``names``); anything else is refused."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as err:
        raise RlimmError(f"'algo.kwargs': cannot read {what} {text!r}: {err.msg}") from None
    return _value(tree, text, what, names or {})


def _value(node: ast.AST, text: str, what: str, names: dict[str, Any]) -> Any:
    def value(sub: ast.AST) -> Any:
        return _value(sub, text, what, names)

    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = value(node.operand)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.List):
        return [value(item) for item in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(value(item) for item in node.elts)
    if isinstance(node, ast.Dict) and all(key is not None for key in node.keys):
        return {value(key): value(item) for key, item in zip(node.keys, node.values, strict=True)}
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "dict"
        and not node.args
        and all(keyword.arg is not None for keyword in node.keywords)
    ):
        return {keyword.arg: value(keyword.value) for keyword in node.keywords}
    name = ast.unparse(node)
    if name in NAMES:
        return names[name] if names else name
    raise RlimmError(
        f"'algo.kwargs': {what} {text!r}: {name!r} is not accepted (numbers, strings, lists, dict(...) "
        f"and {', '.join(NAMES)})"
    )


def _schedule(key: str, value: Any) -> Any:
    if not (isinstance(value, str) and value.startswith("lin_")):
        return value
    try:
        start = float(value.removeprefix("lin_"))
    except ValueError:
        raise RlimmError(f"'algo.kwargs.{key}': {value!r} is not lin_<number>") from None
    from stable_baselines3.common.utils import LinearSchedule

    # The Zoo's lin_<x>: x at the start of training, falling linearly to 0 at its end.
    return LinearSchedule(start, 0.0, 1.0)


def constructor_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``algo.kwargs`` as the constructor takes them: ``lin_<x>`` schedules and ``dict(...)`` strings
    (the Zoo's forms, also accepted in a config) turned into objects; the rest as given."""
    out = dict(kwargs)
    for key in SCHEDULE_KEYS:
        if key in out:
            out[key] = _schedule(key, out[key])
    for key in DICT_KEYS:
        if isinstance(out.get(key), str):
            out[key] = _literal(out[key], key, _names())
    return out


def normalize_kwargs(normalize: bool | dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """``VecNormalize``'s keyword arguments for ``algo.normalize`` (``None``: no normalisation), with
    the algorithm's ``gamma`` as the Zoo sets it."""
    if normalize is False:
        return None
    out = {} if normalize is True else dict(normalize)
    if "gamma" in kwargs and "gamma" not in out:
        out["gamma"] = kwargs["gamma"]
    return out
