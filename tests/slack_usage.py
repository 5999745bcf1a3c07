"""What the bot does with Slack, read from its source with ``ast``: the Web API methods it
calls (``client.chat_postMessage(...)``, ``api_call("x.y")``, ``client.chat_stream(...)``,
Bolt's ``say``/``set_status``/... utilities) and what it registers with Bolt (events,
commands, shortcuts, interactive listeners). ``tests/test_manifest.py`` checks the Slack app
manifest against it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import slack_sdk.web.client

STREAM_METHODS = frozenset({"chat.startStream", "chat.appendStream", "chat.stopStream"})

# Bolt's listener utilities and the Web API methods they call (slack_bolt/context/*).
BOLT_UTILITIES: dict[str, frozenset[str]] = {
    "say": frozenset({"chat.postMessage"}),
    "say_stream": STREAM_METHODS,
    "set_status": frozenset({"assistant.threads.setStatus"}),
    "set_title": frozenset({"assistant.threads.setTitle"}),
    "set_suggested_prompts": frozenset({"assistant.threads.setSuggestedPrompts"}),
    "get_thread_context": frozenset({"conversations.replies"}),
    "save_thread_context": frozenset({"conversations.replies", "chat.update"}),
}

# Bolt ``App`` registrars, by what they register.
EVENT_REGISTRARS = {"event"}
MESSAGE_REGISTRARS = {"message"}
COMMAND_REGISTRARS = {"command"}
SHORTCUT_REGISTRARS = {"shortcut", "global_shortcut", "message_shortcut"}
INTERACTIVE_REGISTRARS = {"action", "block_action", "view", "view_submission", "view_closed"}
INTERACTIVE_REGISTRARS |= {"options", "block_suggestion"} | SHORTCUT_REGISTRARS
# Bolt's ``Assistant`` middleware hooks, by the event each one listens to.
ASSISTANT_HOOKS = {
    "thread_started": "assistant_thread_started",
    "thread_context_changed": "assistant_thread_context_changed",
    "user_message": "message",
    "bot_message": "message",
}


def web_client_methods() -> dict[str, str]:
    """``WebClient`` method name -> the Web API method it calls, read from the installed SDK."""
    tree = ast.parse(Path(slack_sdk.web.client.__file__).read_text())
    [client] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "WebClient"]
    methods = {}
    for node in client.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        called = [m for call in ast.walk(node) if (m := _api_call_literal(call)) is not None]
        if called:
            methods[node.name] = called[0]
    return methods


def _api_call_literal(node: ast.AST) -> str | None:
    """``x.api_call("chat.update", ...)`` -> ``"chat.update"``."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "api_call"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return node.args[0].value
    return None


def _callee_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


@dataclass
class SlackUsage:
    """What the code does with Slack; each item maps to where it happens (``file:line``)."""

    methods: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    events: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    commands: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    shortcuts: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    interactive: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)


class ModuleConstants:
    """Module-level string constants of the scanned modules, so a listener registered with
    ``CALLBACK_ID`` (or ``module.CALLBACK_ID``, or an imported name) resolves to its value."""

    def __init__(self, modules: dict[str, ast.Module], packages: frozenset[str]) -> None:
        self._values: dict[str, dict[str, str]] = {}
        self._imports: dict[str, dict[str, tuple[str, str | None]]] = {}
        for name, tree in modules.items():
            package = name if name in packages else name.rpartition(".")[0]
            self._values[name] = dict(_string_assignments(tree))
            self._imports[name] = dict(_imported_names(tree, package))

    def resolve(self, module: str, node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in self._values.get(module, {}):
                return self._values[module][node.id]
            source, attr = self._imports.get(module, {}).get(node.id, ("", None))
            return self._values.get(source, {}).get(attr or "")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            # ``blocks.X`` after ``from bot import blocks`` or ``import bot.blocks as blocks``
            source, attr = self._imports.get(module, {}).get(node.value.id, ("", None))
            target = source if attr is None else f"{source}.{attr}"
            return self._values.get(target, {}).get(node.attr)
        return None


def _string_assignments(tree: ast.Module) -> Iterator[tuple[str, str]]:
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            for target in targets:
                if isinstance(target, ast.Name):
                    yield target.id, value.value


def _imported_names(tree: ast.Module, package: str) -> Iterator[tuple[str, tuple[str, str | None]]]:
    """Local name -> (module, attribute); attribute None when the name is a module."""
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                yield alias.asname or alias.name, (base, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    yield alias.asname, (alias.name, None)


def module_name(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def scan(
    modules: dict[str, ast.Module], files: dict[str, str], packages: frozenset[str] = frozenset()
) -> SlackUsage:
    """Every Slack Web API call and Bolt registration in ``modules`` (module name -> tree);
    ``files`` names each module's file, ``packages`` are the modules that are packages."""
    client_methods = web_client_methods()
    constants = ModuleConstants(modules, packages)
    usage = SlackUsage()
    for module, tree in modules.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            where = f"{files[module]}:{node.lineno}"
            for method in _methods_called(node, client_methods):
                usage.methods[method].append(where)
            _record_registration(node, module, where, constants, usage)
    return usage


def _methods_called(call: ast.Call, client_methods: dict[str, str]) -> Iterable[str]:
    name = _callee_name(call.func)
    literal = _api_call_literal(call)
    if literal is not None:
        return {literal}
    if name in {"chat_stream", "ChatStream"}:
        return STREAM_METHODS
    if isinstance(call.func, ast.Attribute) and name in client_methods:
        return {client_methods[name]}
    return BOLT_UTILITIES.get(name or "", frozenset())


def _is_app(node: ast.expr) -> bool:
    name = _callee_name(node)
    return name is not None and name.endswith("app")


def _record_registration(
    call: ast.Call, module: str, where: str, constants: ModuleConstants, usage: SlackUsage
) -> None:
    if not isinstance(call.func, ast.Attribute):
        return
    kind = call.func.attr
    if kind in ASSISTANT_HOOKS:
        usage.events[ASSISTANT_HOOKS[kind]].append(where)
        return
    if not _is_app(call.func.value):
        return
    if kind in MESSAGE_REGISTRARS:
        usage.events["message"].append(where)
        return
    if kind in INTERACTIVE_REGISTRARS:
        usage.interactive.append(where)
    if kind not in EVENT_REGISTRARS | COMMAND_REGISTRARS | SHORTCUT_REGISTRARS:
        return
    arg = call.args[0] if call.args else None
    if isinstance(arg, ast.Dict):
        key = "type" if kind in EVENT_REGISTRARS else "callback_id"
        pairs = {
            constants.resolve(module, k): v for k, v in zip(arg.keys, arg.values, strict=True) if k
        }
        arg = pairs.get(key)
    value = constants.resolve(module, arg) if arg is not None else None
    if value is None:
        usage.unresolved.append(f"{where}: app.{kind}(...) is not a string or module constant")
    elif kind in EVENT_REGISTRARS:
        usage.events[value].append(where)
    elif kind in COMMAND_REGISTRARS:
        usage.commands[value].append(where)
    else:
        usage.shortcuts[value].append(where)


def parse_package(
    package: Path, root: Path
) -> tuple[dict[str, ast.Module], dict[str, str], frozenset[str]]:
    """The modules of ``package`` by dotted name (relative to ``root``), their files, and
    which of them are packages: the arguments of :func:`scan`."""
    modules, files, packages = {}, {}, set()
    for path in sorted(package.rglob("*.py")):
        name = module_name(path, root)
        modules[name] = ast.parse(path.read_text(), filename=str(path))
        files[name] = str(path.relative_to(root))
        if path.name == "__init__.py":
            packages.add(name)
    return modules, files, frozenset(packages)
