"""Write docs/reference/plans.md from the docstrings of acq.plans and its modules.

    python docs/reference/generate.py           # rewrite the page
    python docs/reference/generate.py --check   # exit 1 if the page is out of date

Every name in each module's ``__all__`` gets a heading, its signature and its docstring,
turned from Google style with reST roles into markdown: ``Args:`` sections become
lists, ``::`` blocks and doctests become code blocks (without a language, so the
documentation tests do not run them), and ``:func:`name``` becomes a link when the name
is on the page. tests/test_docs_reference.py fails when the committed page differs
from what this script writes.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

MODULES = (
    "acq.plans",
    "acq.plans.stubs",
    "acq.plans.preprocessors",
    "acq.plans.patterns",
    "acq.plans.tools",
)
PAGE = Path(__file__).resolve().with_name("plans.md")
SECTIONS = ("Args", "Arguments", "Attributes", "Raises", "Returns", "Yields", "Example",
            "Examples", "Note", "Notes")  # fmt: skip
LISTED = ("Args", "Arguments", "Attributes", "Raises")
WIDTH = 88  # longer signatures get one parameter per line

HEADER = """\
# Plans reference

Every public name of `acq.plans` and its modules: the plans, the stubs, the
preprocessors, the trajectories and the plan tools. This page is generated from the
docstrings by `docs/reference/generate.py`; do not edit it by hand -- change the
docstring, then run `python docs/reference/generate.py`.
"""

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj):`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")
_ITEM = re.compile(r"^(\*{0,2}[\w.]+)(?: \(([^)]*)\))?:\s*(.*)$")


# -- what each module exports -----------------------------------------------------------------
def attribute_docs(module: ModuleType) -> dict[str, tuple[str, str]]:
    """``{name: (source of the value, docstring)}`` for module attributes with a docstring."""
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body
    found: dict[str, tuple[str, str]] = {}
    for node, after in itertools.pairwise(body):
        if not (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)):
            continue
        if not isinstance(after.value.value, str):
            continue
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            code = ast.get_source_segment(source, value) or ""
            found[target.id] = (f"{target.id} = {code}", after.value.value)
    return found


def anchor(module: str, name: str | None = None) -> str:
    """The HTML id of a module's section or of one of its names."""
    return module if name is None else f"{module}.{name}"


class Page:
    """The names on the page, to turn cross-references into links."""

    def __init__(self, modules: list[ModuleType]) -> None:
        self.modules = modules
        self.ids: dict[str, str] = {}
        for module in modules:
            self.ids[module.__name__] = anchor(module.__name__)
            for name in public(module):
                self.ids[f"{module.__name__}.{name}"] = anchor(module.__name__, name)

    def link(self, target: str, module: str) -> str:
        """``target`` as inline code, linked when it names something on the page."""
        candidates = [target, f"{module}.{target}", f"acq.plans.{target}"]
        candidates += [f"{m.__name__}.{target}" for m in self.modules]
        for candidate in candidates:
            if candidate in self.ids:
                return f"[`{target}`](#{self.ids[candidate]})"
        return f"`{target}`"


def public(module: ModuleType) -> list[str]:
    """The names a module exports that are not modules themselves."""
    names: list[str] = list(getattr(module, "__all__", []))
    return [n for n in names if not inspect.ismodule(getattr(module, n))]


# -- docstrings to markdown -------------------------------------------------------------------
def _inline(text: str, page: Page, module: str) -> str:
    text = _ROLE.sub(lambda m: page.link(m.group(1), module), text)
    return _LITERAL.sub(r"`\1`", text)


def _fence(lines: list[str]) -> list[str]:
    code = textwrap.dedent("\n".join(lines)).strip("\n")
    return ["```", *code.split("\n"), "```"]


def _section(title: str, lines: list[str], page: Page, module: str) -> list[str]:
    body = textwrap.dedent("\n".join(lines)).strip("\n").split("\n")
    out = [f"**{title}:**", ""]
    if title.startswith("Example") and any(line.startswith(">>>") for line in body):
        return [*out, *_fence(body)]
    if title not in LISTED:
        return [*out, _inline(" ".join(line.strip() for line in body), page, module)]
    for line in body:
        match = _ITEM.match(line)
        if match and not line.startswith(" "):
            name, kind, text = match.groups()
            kind_text = f" ({kind})" if kind else ""
            out.append(f"- `{name}`{kind_text}: {_inline(text, page, module)}")
        elif line.strip() and out[-1].startswith("- "):
            out[-1] += " " + _inline(line.strip(), page, module)
    return out


def markdown(doc: str, page: Page, module: str) -> str:
    """A Google-style docstring as markdown."""
    lines = inspect.cleandoc(doc).split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        title = line.rstrip(":")
        if line.endswith(":") and title in SECTIONS:
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith(" ")):
                j += 1
            out += ["", *_section(title, lines[i + 1 : j], page, module), ""]
            i = j
            continue
        if line.startswith(">>>"):
            j = i
            while j < len(lines) and lines[j].strip():
                j += 1
            out += _fence(lines[i:j])
            i = j
            continue
        if line.rstrip().endswith("::"):
            text = line.rstrip()[:-2].rstrip()
            if text:
                out.append(_inline(text + ":", page, module))
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith(" ")):
                j += 1
            out += ["", *_fence(lines[i + 1 : j]), ""]
            i = j
            continue
        out.append(_inline(line, page, module))
        i += 1
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


# -- one name ---------------------------------------------------------------------------------
def signature(name: str, obj: Any, *, drop_first: bool = False) -> str:
    """``name(params)`` without annotations (they are in the docstrings and the code)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return name
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    if drop_first:
        params = params[1:]
    plain = sig.replace(parameters=params, return_annotation=inspect.Signature.empty)
    prefix = "async " if inspect.iscoroutinefunction(obj) else ""  # awaited, not a plan
    name = prefix + name
    text = f"{name}{plain}"
    if len(text) <= WIDTH:
        return text
    shown = [str(p) for p in params]  # one parameter per line, as black writes it
    for i, param in enumerate(params):
        if param.kind is inspect.Parameter.KEYWORD_ONLY and not any(
            p.kind is inspect.Parameter.VAR_POSITIONAL for p in params
        ):
            shown.insert(i, "*")
            break
    return "\n".join([f"{name}(", *(f"    {p}," for p in shown), ")"])


def entry(module: ModuleType, name: str, page: Page, attrs: dict[str, tuple[str, str]]) -> str:
    """The markdown of one public name."""
    modname = module.__name__
    obj = getattr(module, name)
    parts = [f'<a id="{anchor(modname, name)}"></a>', "", f"### `{name}`", ""]
    own_name = getattr(obj, "__name__", name)
    if name in attrs:
        code, doc = attrs[name]
        return "\n".join([*parts, *_fence([code]), "", markdown(doc, page, modname), ""])
    if callable(obj) and own_name != name and own_name in public(module):
        link = page.link(own_name, modname)
        return "\n".join([*parts, f"Another name for {link}.", ""])
    doc = inspect.getdoc(obj) if (obj.__doc__ or inspect.isclass(obj)) else None
    wrapper = name.removesuffix("_decorator") + "_wrapper"
    if doc is None and name.endswith("_decorator") and hasattr(module, wrapper):
        sig = signature(name, getattr(module, wrapper), drop_first=True)
        doc = (
            f"The decorator form of :func:`{wrapper}`: ``@{sig}`` on a function that "
            f"returns a plan makes it return ``{wrapper}(plan, ...)`` with these arguments."
        )
        parts += [*_fence([sig]), ""]
    else:
        parts += [*_fence([signature(name, obj)]), ""]
    parts.append(markdown(doc, page, modname) if doc else "*(no docstring)*")
    parts.append("")
    if inspect.isclass(obj):
        for method, member in vars(obj).items():
            if method.startswith("_") or not callable(member) or not member.__doc__:
                continue
            parts += [f"#### `{name}.{method}`", ""]
            parts += [*_fence([signature(method, member, drop_first=True)]), ""]
            parts += [markdown(member.__doc__, page, modname), ""]
    return "\n".join(parts)


def render() -> str:
    """The whole page."""
    modules = [importlib.import_module(name) for name in MODULES]
    page = Page(modules)
    out = [HEADER]
    out += [f"- [`{m.__name__}`](#{anchor(m.__name__)})" for m in modules]
    for module in modules:
        modname = module.__name__
        attrs = attribute_docs(module)
        out += ["", f'<a id="{anchor(modname)}"></a>', "", f"## `{modname}`", ""]
        out += [markdown(module.__doc__ or "", page, modname), ""]
        out += ["| name | what it does |", "|---|---|"]
        for name in public(module):
            obj = getattr(module, name)
            doc = attrs[name][1] if name in attrs else (obj.__doc__ or "")
            first = inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ")
            summary = _inline(first, page, modname).replace("|", "\\|")
            out.append(f"| [`{name}`](#{anchor(modname, name)}) | {summary} |")
        out.append("")
        out += [entry(module, name, page, attrs) for name in public(module)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    """Write the page, or with ``--check`` say whether it is up to date."""
    text = render()
    if "--check" in argv:
        if PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE} is out of date: run python docs/reference/generate.py")
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
