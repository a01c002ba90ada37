"""Workflow graphs: parsed and checked whole before any credit is held, then bound to files and
priced.

A graph is JSON (the same saved and inline; docs/workflows.md)::

    {"inputs": {"source": {"kind": "video"}, "frames": {"kind": "image", "list": true}},
     "nodes": {"p480": {"type": "video.transcode", "params": {"preset": "mp4_480p"},
                        "input": {"file_id": {"input": "source"}}}, ...}}

`parse` checks everything that does not need the tenant's files and reports every problem at
once (`WorkflowInvalid`, 422 ``invalid_workflow``, each problem naming its node and field):
names, unknown job types and models, params against the type's schema (the same check as a
single submit, `pipelines.services.checked_params`), input fields against the type's input
schema, references to unknown run inputs or nodes, kinds along every edge (each job type
declares its outputs' kinds, `JobType.output_kinds`), cycles (naming their nodes), ``map`` on a
field that is not bound to a list, and the tier's node count. `bind_inputs` then checks the run's
inputs against the tenant's files (their owner, kind, count and duration), and `quote` prices
the graph for them.

Fan-out: a node with ``"map": "<field>"`` runs once per item of the list bound to that field
(a list run input, or ``{"node": X}``: every output of X). Counting items (the quote's rule):

- a node that maps over a list run input has as many items as the list has files;
- a node that maps over ``{"node": X}`` has items(X) x len(X's declared output kinds): every job
  type declares exactly how many outputs it writes for its params, so the count is exact;
- any other node has one item. A node that takes one output of a mapped node
  (``{"node": X, "output": i}``, the i-th output overall) is a fan-in: it waits for every item
  of X and runs once.

A field that takes a list of files (a job type's ``list_fields``: ``file_ids`` of
``video.concat`` and ``video.render``) may be written as a list whose items are each one file
from anywhere: a file id, ``{"node": X, "output": i}`` or ``{"input": name}`` (a single-file
run input). The node takes the list whole and runs once, after every node its items name;
each item is checked, bound and reported as ``input.<field>[i]``. A job type that checks its
params against its files' kinds (``JobType.check_files``: a timeline naming files by index) is
checked with the list's length and the kinds known when the graph is parsed, and with every
kind once the files are bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from faktry.errors import FaktryError, ValidationError
from pipelines import jobtypes
from pipelines.services import Policy, checked_params
from quotas.limits import TierLimits
from storage.models import File

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: Kinds a run input may declare; ``any`` takes whatever its consumers take.
INPUT_KINDS = ("image", "video", "audio", "any")
#: No tier allows more nodes than this.
MAX_NODES = 200
#: Tier defaults for limits a tier row may not carry yet.
DEFAULT_MAX_NODES = 20
DEFAULT_MAX_ITEMS = 100
#: A file id written in a graph (not a run input) is bound under "<node>.<field>", an item of
#: a list under "<node>.<field>.<i>".
LITERAL_SEP = "."
#: What a reference stands for when the input is checked against its type's schema.
_SOME_FILE = "fil_" + "0" * 24
#: The path a schema gives an item of a list field (``input.file_ids.2``).
_ITEM_PATH = re.compile(r"input\.(?P<field>[a-z_]+)\.(?P<index>\d+)(?P<rest>\..*)?")


class WorkflowInvalid(ValidationError):
    """A graph or its run inputs were refused: ``details.problems`` lists every problem, each
    ``{"node", "field", "code", "message"}`` (``node`` is null for the graph's own fields and
    for run inputs)."""

    code = "invalid_workflow"

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        count = len(problems)
        first = problems[0]["message"] if problems else ""
        super().__init__(
            f"the workflow has {count} problem{'s' if count != 1 else ''}; nothing was held"
            + (f" (first: {first})" if first else ""),
            details={"problems": problems},
        )
        self.problems = problems


@dataclass(frozen=True)
class RunInput:
    kind: str
    list: bool = False


@dataclass(frozen=True)
class Literal:
    """A value written in the graph: a prompt, a number, or one of the tenant's file ids."""

    value: Any


@dataclass(frozen=True)
class Ref:
    """A run input (``input``), or a node's outputs: one of them (``output``), or all of them."""

    input: str | None = None
    node: str | None = None
    output: int | None = None

    @property
    def is_list(self) -> bool:
        return self.node is not None and self.output is None


@dataclass(frozen=True)
class RefList:
    """A list of files written in the graph for a list field, each item one file: a file id
    (`Literal`), one output of a node or a single-file run input (`Ref`). The job takes the
    list as a whole, in this order."""

    items: tuple[Literal | Ref, ...]


@dataclass(frozen=True)
class Node:
    name: str
    type: str
    params: dict[str, Any]
    input: dict[str, Literal | Ref | RefList]
    map: str | None = None
    model: str | None = None
    provider: str | None = None
    #: False when the node's params were refused: its edges are still checked, by what its
    #: type takes at all, so one answer names every problem.
    checked: bool = True

    @property
    def job_type(self) -> jobtypes.JobType:
        return jobtypes.JOB_TYPES[self.type]

    @property
    def output_kinds(self) -> tuple[str, ...]:
        return self.job_type.output_kinds(self.params)

    def refs(self) -> list[tuple[str, str, Ref]]:
        """Every reference in the node's input as (field, path, reference): a field's own, or
        each reference item of a list, at ``input.<field>[i]``."""
        found = []
        for field_name, value in self.input.items():
            if isinstance(value, Ref):
                found.append((field_name, f"input.{field_name}", value))
            elif isinstance(value, RefList):
                found.extend(
                    (field_name, f"input.{field_name}[{i}]", item)
                    for i, item in enumerate(value.items)
                    if isinstance(item, Ref)
                )
        return found

    def depends_on(self) -> set[str]:
        return {ref.node for _, _, ref in self.refs() if ref.node}


@dataclass(frozen=True)
class Graph:
    inputs: dict[str, RunInput]
    nodes: dict[str, Node]
    #: Node names in an order where every node comes after those it depends on.
    order: list[str]
    #: The tier's most items per list (run inputs and fan-outs).
    max_items: int = DEFAULT_MAX_ITEMS
    max_duration_seconds: int | None = None


@dataclass(frozen=True)
class FileFacts:
    id: str
    kind: str
    size: int
    media: dict[str, Any]
    sha256: str


@dataclass(frozen=True)
class NodeQuote:
    #: Jobs the node runs (1 unless it maps over a list).
    items: int
    #: The price of one item (the dearest, when the items' files differ).
    unit_price: int
    price: int


@dataclass(frozen=True)
class Quote:
    total: int
    nodes: dict[str, NodeQuote] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": "workflow_quote",
            "price": self.total,
            "currency": "millicredits",
            "nodes": {
                name: {"items": q.items, "unit_price": q.unit_price, "price": q.price}
                for name, q in self.nodes.items()
            },
        }


class _Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, node: str | None, field: str | None, code: str, message: str) -> None:
        self.items.append({"node": node, "field": field, "code": code, "message": message})

    def error(self, node: str | None, err: FaktryError, prefix: str = "") -> None:
        where = getattr(err, "field", None) or err.details.get("field")
        self.add(node, f"{prefix}{where}" if where else prefix.rstrip(".") or None, err.code, err.message)

    def raise_any(self) -> None:
        if self.items:
            raise WorkflowInvalid(self.items)


def _kind_phrase(kind: str) -> str:
    return {"image": "an image", "audio": "audio", "video": "a video", "playlist": "an HLS playlist"}.get(
        kind, f"a {kind} file"
    )


# -- parse ------------------------------------------------------------------------------------


def parse(raw: Any, *, policy: Policy, limits: TierLimits | None) -> Graph:
    """The checked graph, or `WorkflowInvalid` listing every problem found."""
    problems = _Problems()
    max_nodes = min(MAX_NODES, getattr(limits, "workflow_max_nodes", DEFAULT_MAX_NODES))
    max_items = getattr(limits, "workflow_max_items", DEFAULT_MAX_ITEMS)
    max_duration = getattr(limits, "max_duration_seconds", None)
    if not isinstance(raw, dict):
        problems.add(None, "graph", "invalid_request", "the graph must be an object with inputs and nodes")
        problems.raise_any()
    for key in sorted(set(raw) - {"inputs", "nodes"}):
        problems.add(None, key, "unknown_field", f"unknown graph field {key!r}; a graph has inputs and nodes")
    inputs = _parse_inputs(raw.get("inputs", {}), problems)
    nodes_raw = raw.get("nodes")
    if not isinstance(nodes_raw, dict) or not nodes_raw:
        problems.add(None, "nodes", "invalid_request", "nodes must be an object of one or more named nodes")
        problems.raise_any()
    assert isinstance(nodes_raw, dict)
    if len(nodes_raw) > max_nodes:
        tier = getattr(limits, "name", "this")
        problems.add(
            None,
            "nodes",
            "too_many_nodes",
            f"the graph has {len(nodes_raw)} nodes; the {tier} tier allows at most {max_nodes}",
        )
        problems.raise_any()  # the count alone is the answer; nothing more is read
    nodes: dict[str, Node] = {}
    for name, spec in nodes_raw.items():
        node = _parse_node(name, spec, policy, problems)
        if node is not None:
            nodes[name] = node
    for node in nodes.values():
        _check_references(node, inputs, nodes, set(nodes_raw), problems)
        _check_files(node, _list_kinds(node, inputs, nodes), problems)
    order = _order(nodes, problems)
    problems.raise_any()
    return Graph(inputs, nodes, order, max_items=max_items, max_duration_seconds=max_duration)


def _parse_inputs(raw: Any, problems: _Problems) -> dict[str, RunInput]:
    if not isinstance(raw, dict):
        problems.add(None, "inputs", "invalid_request", "inputs must be an object of named run inputs")
        return {}
    found = {}
    for name, spec in raw.items():
        where = f"inputs.{name}"
        if not isinstance(name, str) or not NAME.fullmatch(name):
            problems.add(
                None, where, "invalid_name", "an input name is a-z, 0-9 and _, starting with a letter"
            )
            continue
        if not isinstance(spec, dict):
            problems.add(None, where, "invalid_request", 'an input is {"kind": ..., "list": true|false}')
            continue
        for key in sorted(set(spec) - {"kind", "list"}):
            problems.add(None, f"{where}.{key}", "unknown_field", f"unknown input field {key!r}")
        kind, many = spec.get("kind", "any"), spec.get("list", False)
        if kind not in INPUT_KINDS:
            problems.add(
                None, f"{where}.kind", "invalid_request", f"kind must be one of {', '.join(INPUT_KINDS)}"
            )
            continue
        if not isinstance(many, bool):
            problems.add(None, f"{where}.list", "invalid_request", "list must be true or false")
            continue
        found[name] = RunInput(kind, many)
    return found


def _parse_node(name: Any, spec: Any, policy: Policy, problems: _Problems) -> Node | None:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        problems.add(
            str(name)[:40],
            None,
            "invalid_name",
            "a node name is a-z, 0-9 and _, starting with a letter (40 at most)",
        )
        return None
    if not isinstance(spec, dict):
        problems.add(name, None, "invalid_request", 'a node is {"type", "params", "input", "map"}')
        return None
    for key in sorted(set(spec) - {"type", "params", "input", "map"}):
        problems.add(
            name, key, "unknown_field", f"unknown node field {key!r}; a node has type, params, input, map"
        )
    try:
        job_type = jobtypes.get(spec.get("type"))
    except FaktryError as err:
        problems.error(name, err)
        return None
    model = provider = None
    params: dict[str, Any] = {}
    params_ok = True
    try:
        params, found = checked_params(job_type, spec.get("params", {}), policy.catalog)
        if found is not None:
            model = found.id
            provider, _ = policy.catalog.runs_on(found, policy.configured, job_type.name)
    except FaktryError as err:
        problems.error(name, err)
        params_ok = False
    given = spec.get("input", {})
    if not isinstance(given, dict):
        problems.add(name, "input", "invalid_request", "input must be an object of fields")
        return None
    refs: dict[str, Literal | Ref | RefList] = {}
    for field_name, value in given.items():
        ref = _parse_value(name, field_name, value, job_type, problems)
        if ref is not None:
            refs[field_name] = ref
    _check_input_schema(name, job_type, given, problems)
    mapped = spec.get("map")
    if mapped is not None and (not isinstance(mapped, str) or mapped not in given):
        problems.add(
            name, "map", "map_not_list", f"map names an input field of the node; {mapped!r} is not one"
        )
        mapped = None
    return Node(name, job_type.name, params if params_ok else {}, refs, mapped, model, provider, params_ok)


def _parse_value(
    node: str, field_name: str, value: Any, job_type: jobtypes.JobType, problems: _Problems
) -> Literal | Ref | RefList | None:
    where = f"input.{field_name}"
    if field_name in job_type.list_fields:
        if isinstance(value, list):
            return RefList(
                tuple(_parse_item(node, f"{where}[{i}]", item, problems) for i, item in enumerate(value))
            )
        if isinstance(value, dict):
            problems.add(
                node, where, "bad_reference",
                f"{where} is a list of files: write [...] with one file per item: a file id, "
                '{"node": name, "output": index} or {"input": name}',
            )  # fmt: skip
            return None
    if not isinstance(value, dict):
        return Literal(value)
    keys = set(value)
    if keys not in ({"input"}, {"node"}, {"node", "output"}):
        problems.add(
            node,
            where,
            "bad_reference",
            'a reference is {"input": name}, {"node": name, "output": index} or {"node": name}',
        )
        return None
    if field_name not in job_type.files:
        problems.add(
            node, where, "not_a_file_field", f"{job_type.name} takes no file in {where}: write its value here"
        )
        return None
    if "input" in value:
        if not isinstance(value["input"], str):
            problems.add(node, where, "bad_reference", "input names a run input")
            return None
        return Ref(input=value["input"])
    output = value.get("output")
    if not isinstance(value["node"], str) or (
        "output" in value and (isinstance(output, bool) or not isinstance(output, int) or output < 0)
    ):
        problems.add(node, where, "bad_reference", "node names a node; output is an index from 0")
        return None
    return Ref(node=value["node"], output=output)


#: An item of a list that could not be read: its problem is reported and the graph refused.
_UNREADABLE = Literal(None)


def _parse_item(node: str, where: str, item: Any, problems: _Problems) -> Literal | Ref:
    """One item of a list field: a file id as written (its schema checks it), or a reference
    to exactly one file."""
    if not isinstance(item, dict):
        return Literal(item)
    output = item.get("output")
    if set(item) == {"input"} and isinstance(item["input"], str):
        return Ref(input=item["input"])
    if (
        set(item) == {"node", "output"}
        and isinstance(item["node"], str)
        and isinstance(output, int)
        and not isinstance(output, bool)
        and output >= 0
    ):
        return Ref(node=item["node"], output=output)
    problems.add(
        node, where, "bad_reference",
        'an item of a list is one file: a file id, {"node": name, "output": index} or {"input": name}'
        + (' ({"node": name} alone is every output of a node, a list)' if set(item) == {"node"} else ""),
    )  # fmt: skip
    return _UNREADABLE


def _check_input_schema(
    node: str, job_type: jobtypes.JobType, given: dict[str, Any], problems: _Problems
) -> None:
    """The input as the job will get it, with each reference standing for a file id, against
    the type's input check and schema (missing and unknown fields, literals out of range, a
    list's length), each problem at its field (``input.<field>[i]`` for an item of a list).
    A field already refused for how it was written is not reported again."""

    def as_file(value: Any) -> Any:
        return _SOME_FILE if isinstance(value, dict) else value

    probe = {
        name: (
            [as_file(item) for item in value]
            if name in job_type.list_fields and isinstance(value, list)
            else as_file(value)
        )
        for name, value in given.items()
    }
    reported = {p["field"] for p in problems.items if p["node"] == node and p["field"]}
    found: list[FaktryError] = []
    if job_type.input_check is not None:
        try:
            job_type.input_check(probe)
        except FaktryError as refused:
            found.append(refused)
    found.extend(jobtypes.input_problems(job_type, probe))
    for err in found:
        where = getattr(err, "field", None) or err.details.get("field") or "input"
        message = err.message
        item = _ITEM_PATH.fullmatch(where)
        if item is not None and item["field"] in job_type.list_fields:
            path = f"input.{item['field']}[{item['index']}]{item['rest'] or ''}"
            message, where = message.replace(where, path, 1), path
        if where in reported or any(where.startswith(f"{r}[") for r in reported):
            continue
        reported.add(where)
        problems.add(node, where, err.code, message)


def _check_references(
    node: Node, inputs: dict[str, RunInput], nodes: dict[str, Node], named: set[str], problems: _Problems
) -> None:
    for field_name, value in node.input.items():
        if isinstance(value, RefList) and node.map == field_name:
            problems.add(
                node.name, "map", "map_not_list",
                f"input.{field_name} is a list written in the graph: the node takes it whole and runs "
                "once; map runs once per file of a list run input or of a node's outputs",
            )  # fmt: skip
    for field_name, where, ref in node.refs():
        _check_reference(node, field_name, where, ref, inputs, nodes, named, problems)


def _check_reference(
    node: Node,
    field_name: str,
    where: str,
    ref: Ref,
    inputs: dict[str, RunInput],
    nodes: dict[str, Node],
    named: set[str],
    problems: _Problems,
) -> None:
    """One reference: what it names exists, is one file or a mapped list as the field needs,
    and is of a kind the field takes. ``where`` is the field, or the item of a list field
    (``input.<field>[i]``: always one file)."""
    item = where != f"input.{field_name}"
    mapped = not item and node.map == field_name
    if ref.input is not None:
        run_input = inputs.get(ref.input)
        if run_input is None:
            problems.add(node.name, where, "unknown_input", f"there is no run input {ref.input!r}")
            return
        if run_input.list and item:
            problems.add(
                node.name, where, "list_in_list",
                f"run input {ref.input!r} is a list; an item of input.{field_name} is one file",
            )  # fmt: skip
        elif run_input.list and not mapped:
            problems.add(
                node.name, where, "list_needs_map",
                f"run input {ref.input!r} is a list: map over {field_name!r} to run once per file",
            )  # fmt: skip
        elif mapped and not run_input.list:
            problems.add(node.name, "map", "map_not_list", f"run input {ref.input!r} is one file, not a list")
        if run_input.kind != "any":
            _check_kind(node, field_name, run_input.kind, f"run input {ref.input!r} is", problems, where)
        return
    assert ref.node is not None
    if ref.node not in named:
        problems.add(node.name, where, "unknown_node", f"there is no node {ref.node!r}")
        return
    upstream = nodes.get(ref.node)
    if upstream is None or not upstream.checked:  # its outputs are unknown; reported there
        return
    kinds = upstream.output_kinds
    if not kinds:
        problems.add(
            node.name, where, "no_such_output", f"node {ref.node!r} ({upstream.type}) writes no files"
        )
        return
    if ref.output is None:
        if not mapped:
            problems.add(
                node.name, where, "list_needs_map",
                f"all outputs of {ref.node!r} are a list: map over {field_name!r}, or take one "
                f'with {{"node": "{ref.node}", "output": 0}}',
            )  # fmt: skip
        for kind in sorted(set(kinds)):
            _check_kind(node, field_name, kind, f"node {ref.node!r} writes", problems, where)
        return
    if mapped:
        problems.add(node.name, "map", "map_not_list", f"one output of {ref.node!r} is one file, not a list")
    if upstream.map is None and ref.output >= len(kinds):
        problems.add(
            node.name, where, "no_such_output",
            f"node {ref.node!r} writes {len(kinds)} output{'s' if len(kinds) != 1 else ''} "
            f"(0 to {len(kinds) - 1}); there is no output {ref.output}",
        )  # fmt: skip
        return
    kind = kinds[ref.output % len(kinds)]
    _check_kind(node, field_name, kind, f"output {ref.output} of {ref.node!r} is", problems, where)


def _list_kinds(
    node: Node,
    inputs: dict[str, RunInput],
    nodes: dict[str, Node],
    bound: dict[str, list[FileFacts]] | None = None,
) -> dict[str, Any]:
    """The kind of each item of the node's lists by slot (``file_ids.3``), None where it is not
    known yet: a file id's until it is bound, an ``any`` run input's until it is given."""
    kinds: dict[str, Any] = {}
    for field_name, value in node.input.items():
        if not isinstance(value, RefList):
            continue
        for i, item in enumerate(value.items):
            kind: str | None = None
            if isinstance(item, Literal):
                facts = (bound or {}).get(literal_key(node.name, field_name, i), [])
                kind = facts[0].kind if facts else None
            elif item.input is not None:
                files = (bound or {}).get(item.input, [])
                declared = inputs[item.input].kind if item.input in inputs else "any"
                kind = files[0].kind if files else (None if declared == "any" else declared)
            elif (upstream := nodes.get(item.node or "")) is not None and upstream.checked:
                written = upstream.output_kinds
                if written and item.output is not None and (upstream.map or item.output < len(written)):
                    kind = written[item.output % len(written)]
            kinds[f"{field_name}.{i}"] = kind
    return kinds


def _check_files(node: Node, kinds: dict[str, Any], problems: _Problems) -> None:
    """A job type that checks its params against its files' kinds (a timeline naming files by
    index) does so with what the graph knows of its lists: their lengths, and the kinds known."""
    check = node.job_type.check_files
    if check is None or not node.checked or not kinds:
        return
    try:
        check(node.params, kinds)
    except FaktryError as err:
        problems.error(node.name, err)


def _accepts(node: Node, field_name: str, kind: str) -> bool:
    job_type = node.job_type
    if field_name == "file_id":
        return job_type.accepts(kind, node.params) if node.checked else kind in job_type.input_kinds
    return kind in job_type.files.get(field_name, frozenset())


def _check_kind(
    node: Node, field_name: str, kind: str, source: str, problems: _Problems, where: str | None = None
) -> None:
    if _accepts(node, field_name, kind):
        return
    where = where or f"input.{field_name}"
    takes = " or ".join(sorted(node.job_type.files.get(field_name, frozenset())))
    problems.add(
        node.name,
        where,
        "kind_mismatch",
        f"{node.type} takes {takes} in {where}"
        + (f" with preset {node.params.get('preset')!r}" if "preset" in node.params else "")
        + f"; {source} {_kind_phrase(kind)}",
    )


def _order(nodes: dict[str, Node], problems: _Problems) -> list[str]:
    """A topological order of the nodes (stable: as written where the edges allow), and a
    problem for each cycle, naming its nodes in order."""
    deps = {name: {d for d in node.depends_on() if d in nodes} for name, node in nodes.items()}
    order: list[str] = []
    done: set[str] = set()
    remaining = list(nodes)
    while remaining:
        ready = [name for name in remaining if deps[name] <= done]
        if not ready:
            break
        for name in ready:
            order.append(name)
            done.add(name)
        remaining = [name for name in remaining if name not in done]
    reported: set[frozenset[str]] = set()
    for start in remaining:
        cycle = _cycle_from(start, deps, set(remaining))
        if cycle and frozenset(cycle) not in reported:
            reported.add(frozenset(cycle))
            path = " -> ".join([*cycle, cycle[0]])
            problems.add(
                cycle[0], "input", "cycle", f"the nodes {path} form a cycle: each waits for the next"
            )
    return order


def _cycle_from(start: str, deps: dict[str, set[str]], within: set[str]) -> list[str]:
    """A cycle reachable from ``start`` (following dependencies), as a list of nodes."""
    path: list[str] = []
    on_path: dict[str, int] = {}
    node: str | None = start
    while node is not None and node not in on_path:
        on_path[node] = len(path)
        path.append(node)
        node = next((d for d in sorted(deps[node]) if d in within), None)
    if node is None:
        return []
    return path[on_path[node] :]


def upstream(graph: Graph, node: str) -> set[str]:
    """Every node ``node`` depends on, directly or not."""
    seen: set[str] = set()
    todo = list(graph.nodes[node].depends_on())
    while todo:
        name = todo.pop()
        if name in seen or name not in graph.nodes:
            continue
        seen.add(name)
        todo.extend(graph.nodes[name].depends_on())
    return seen


# -- binding run inputs to files ---------------------------------------------------------------

_FILES = select(File.id, File.kind, File.size, File.media, File.sha256, File.root_id)


def literal_key(node: str, field_name: str, item: int | None = None) -> str:
    """Where `bind_inputs` answers a file id written in the graph: ``<node>.<field>``, or
    ``<node>.<field>.<i>`` for the i-th item of a list field."""
    key = f"{node}{LITERAL_SEP}{field_name}"
    return key if item is None else f"{key}{LITERAL_SEP}{item}"


def bind_inputs(session: Session, tenant_id: str, graph: Graph, inputs: Any) -> dict[str, list[FileFacts]]:
    """Each run input's files, in order (one for a single input), and each file id written in
    the graph under its `literal_key` (an item of a list field under its own); or
    `WorkflowInvalid` listing every problem: a
    missing or unknown run input, a file that is not the tenant's (answered exactly as one
    that does not exist), of the wrong kind for the input or for a node that takes it, too
    long for the tier, or a list longer than the tier allows."""
    problems = _Problems()
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        problems.add(
            None, "inputs", "invalid_request", "inputs must be an object of run input names to file ids"
        )
        problems.raise_any()
    wanted: dict[str, list[tuple[str, Any]]] = {}  # key -> [(field path, file id)]
    for name in sorted(set(inputs) - set(graph.inputs)):
        problems.add(None, f"inputs.{name}", "unknown_input", f"the workflow has no input {name!r}")
    for name, spec in graph.inputs.items():
        where = f"inputs.{name}"
        if name not in inputs:
            problems.add(None, where, "missing_input", f"run input {name!r} ({spec.kind}) was not given")
            continue
        value = inputs[name]
        if spec.list:
            if not isinstance(value, list) or not value:
                problems.add(None, where, "invalid_request", f"run input {name!r} is a list of file ids")
                continue
            if len(value) > graph.max_items:
                problems.add(
                    None, where, "too_many_items",
                    f"run input {name!r} has {len(value)} files; the tier allows at most {graph.max_items}",
                )  # fmt: skip
                continue
            wanted[name] = [(f"{where}[{i}]", v) for i, v in enumerate(value)]
        else:
            if isinstance(value, list):
                problems.add(None, where, "invalid_request", f"run input {name!r} is one file id, not a list")
                continue
            wanted[name] = [(where, value)]
    for node in graph.nodes.values():
        for field_name, value in node.input.items():
            if field_name not in node.job_type.files:
                continue
            if isinstance(value, Literal):
                wanted[literal_key(node.name, field_name)] = [(f"input.{field_name}", value.value)]
            elif isinstance(value, RefList):
                for i, item in enumerate(value.items):
                    if isinstance(item, Literal):
                        wanted[literal_key(node.name, field_name, i)] = [
                            (f"input.{field_name}[{i}]", item.value)
                        ]
    ids = {str(v) for items in wanted.values() for _, v in items if isinstance(v, str)}
    rows = {}
    if ids:
        stmt = _FILES.where(File.tenant_id == tenant_id, File.id.in_(sorted(ids)))
        rows = {row.id: row for row in session.execute(stmt)}
    consumers = _consumers(graph)
    bound: dict[str, list[FileFacts]] = {}
    for key, items in wanted.items():
        node_name = key.split(LITERAL_SEP, 1)[0] if LITERAL_SEP in key else None
        facts = []
        for where, file_id in items:
            row = rows.get(file_id) if isinstance(file_id, str) else None
            if row is None:
                problems.add(node_name, where, "file_not_found", "no such file")
                continue
            if row.root_id is not None or row.kind == "playlist":
                problems.add(node_name, where, "unsupported_input", "this file cannot be a job input")
                continue
            _check_bound_kind(graph, key, row.kind, where, consumers, problems)
            duration = (row.media or {}).get("duration")
            limit = graph.max_duration_seconds
            if limit is not None and duration is not None and float(duration) > limit:
                problems.add(
                    node_name, where, "media_too_long",
                    f"the file is {float(duration):.0f} s long; the tier allows at most {limit} s",
                )  # fmt: skip
            facts.append(FileFacts(row.id, row.kind, row.size, dict(row.media or {}), row.sha256))
        bound[key] = facts
    problems.raise_any()
    _check_fan_in(graph, bound, problems)
    for node in graph.nodes.values():
        _check_files(node, _list_kinds(node, graph.inputs, graph.nodes, bound), problems)
    problems.raise_any()
    return bound


def _check_fan_in(graph: Graph, bound: dict[str, list[FileFacts]], problems: _Problems) -> None:
    """Now that the lists' lengths are known: a node that takes the i-th output of a mapped
    node names an output that will exist, and no fan-out is wider than the tier allows."""
    counts = items_of(graph, bound)
    for node in graph.nodes.values():
        if counts[node.name] > graph.max_items:
            problems.add(
                node.name, "map", "too_many_items",
                f"the node would run {counts[node.name]} jobs; the tier allows at most {graph.max_items}",
            )  # fmt: skip
        for _, where, ref in node.refs():
            if ref.node is None or ref.output is None:
                continue
            source = graph.nodes[ref.node]
            total = counts[ref.node] * len(source.output_kinds)
            if source.map is not None and ref.output >= total:
                problems.add(
                    node.name, where, "no_such_output",
                    f"node {ref.node!r} writes {total} outputs for these inputs; "
                    f"there is no output {ref.output}",
                )  # fmt: skip


def _consumers(graph: Graph) -> dict[str, list[tuple[Node, str]]]:
    """Run input name -> the (node, field) pairs that take it."""
    found: dict[str, list[tuple[Node, str]]] = {}
    for node in graph.nodes.values():
        for field_name, _, ref in node.refs():
            if ref.input is not None:
                found.setdefault(ref.input, []).append((node, field_name))
    return found


def _check_bound_kind(
    graph: Graph,
    key: str,
    kind: str,
    where: str,
    consumers: dict[str, list[tuple[Node, str]]],
    problems: _Problems,
) -> None:
    if LITERAL_SEP in key:
        node_name, slot = key.split(LITERAL_SEP, 1)
        field_name = jobtypes.slot_field(slot)
        node = graph.nodes[node_name]
        if not _accepts(node, field_name, kind):
            takes = " or ".join(sorted(node.job_type.files[field_name]))
            problems.add(
                node_name,
                where,
                "kind_mismatch",
                f"{node.type} takes {takes} here; this file is {_kind_phrase(kind)}",
            )
        return
    declared = graph.inputs[key].kind
    if declared != "any" and kind != declared:
        problems.add(
            None,
            where,
            "kind_mismatch",
            f"run input {key!r} takes {declared}; this file is {_kind_phrase(kind)}",
        )
        return
    for node, field_name in consumers.get(key, []):
        if not _accepts(node, field_name, kind):
            problems.add(
                node.name, where, "kind_mismatch",
                f"node {node.name!r} ({node.type}) cannot take {_kind_phrase(kind)} in input.{field_name}",
            )  # fmt: skip


# -- quote -------------------------------------------------------------------------------------


def items_of(graph: Graph, bound: dict[str, list[FileFacts]]) -> dict[str, int]:
    """How many jobs each node runs (the rule in this module's docstring)."""
    counts: dict[str, int] = {}
    for name in graph.order:
        node = graph.nodes[name]
        ref = node.input.get(node.map) if node.map else None
        if not isinstance(ref, Ref):
            counts[name] = 1
        elif ref.input is not None:
            counts[name] = len(bound.get(ref.input, []))
        else:
            assert ref.node is not None
            counts[name] = counts[ref.node] * len(graph.nodes[ref.node].output_kinds)
    return counts


def quote(graph: Graph, bound: dict[str, list[FileFacts]], policy: Policy) -> Quote:
    """The price of a run of ``graph`` on ``bound`` files: each node's estimate (as a single
    submit would hold it) for each of its items. An input that an earlier node will write
    is priced with the duration it carries down the graph (a transcode's output lasts as
    long as its input; a generated video as long as its ``duration``), else as the job
    type's price rule prices an unknown duration."""
    counts = items_of(graph, bound)
    carried: dict[str, list[dict[str, Any]]] = {}  # node -> media of each item's main input
    nodes: dict[str, NodeQuote] = {}
    for name in graph.order:
        node = graph.nodes[name]
        per_item = _item_media(graph, node, bound, carried, counts[name])
        carried[name] = per_item
        prices = [_estimate(node, media, policy) for media in per_item]
        unit = max(prices, default=_estimate(node, {}, policy))
        nodes[name] = NodeQuote(counts[name], unit, sum(prices))
    return Quote(sum(q.price for q in nodes.values()), nodes)


def _item_media(
    graph: Graph,
    node: Node,
    bound: dict[str, list[FileFacts]],
    carried: dict[str, list[dict[str, Any]]],
    count: int,
) -> list[dict[str, Any]]:
    """The media facts each item is priced by, as far as they are known: its main input's
    (``file_id``); for a job over a list of files, their durations summed
    (`jobtypes.priced_media`); for a job type that prices its own length from its params
    (``priced_seconds``: a render's stated length, given its files' lengths where known),
    that length."""
    value = node.input.get("file_id")
    lists = {name: v for name, v in node.input.items() if isinstance(v, RefList)}
    if node.job_type.priced_seconds is not None or (value is None and lists):
        slots = {
            f"{name}.{i}": _one_file(graph, node, item, literal_key(node.name, name, i), bound, carried)
            for name, files in lists.items()
            for i, item in enumerate(files.items)
        }
        return [jobtypes.priced_media(node.job_type, slots, node.params)] * count
    if isinstance(value, Literal):
        return [_one_file(graph, node, value, literal_key(node.name, "file_id"), bound, carried)] * count
    if not isinstance(value, Ref):
        return [_generated(node)] * count
    if node.map != "file_id":
        return [_one_file(graph, node, value, "", bound, carried)] * count
    if value.input is not None:
        return [f.media for f in bound.get(value.input, [])]
    assert value.node is not None
    return [_carried(m) for m in _outputs_media(graph, value.node, carried)][:count] or [{}] * count


def _one_file(
    graph: Graph,
    node: Node,
    value: Literal | Ref,
    key: str,
    bound: dict[str, list[FileFacts]],
    carried: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """The media facts of one file a node takes: bound (a file id written in the graph, under
    ``key``; a run input), or carried down from the node that writes it."""
    if isinstance(value, Literal):
        facts = bound.get(key, [])
        return facts[0].media if facts else {}
    if value.input is not None:
        files = bound.get(value.input, [])
        return files[0].media if files else {}
    assert value.node is not None
    outputs = _outputs_media(graph, value.node, carried)
    pick = outputs[value.output] if value.output is not None and value.output < len(outputs) else {}
    return _carried(pick)


def _outputs_media(graph: Graph, name: str, carried: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """What each output of a node is carried as, in order over its items."""
    return [media for media in carried.get(name, [{}]) for _ in graph.nodes[name].output_kinds]


def _generated(node: Node) -> dict[str, Any]:
    """What a node that makes media from nothing says of its duration."""
    seconds = node.params.get("duration")
    digits = "".join(ch for ch in str(seconds) if ch.isdigit() or ch == ".") if seconds is not None else ""
    return {"duration": float(digits)} if digits else {}


def _carried(media: dict[str, Any]) -> dict[str, Any]:
    return {"duration": media["duration"]} if media.get("duration") else {}


def _estimate(node: Node, media: dict[str, Any], policy: Policy) -> int:
    literal = node.input.get("text") or node.input.get("prompt")
    text = str(literal.value or "") if isinstance(literal, Literal) else ""
    if node.model is not None:
        model = policy.catalog.models[node.model]
        return policy.prices.estimate(node.type, node.params, media, rule=model.price, text=text)
    return policy.prices.estimate(node.type, node.params, media)
