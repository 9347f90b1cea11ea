"""The compiled route table: a segment trie, looked up in time that grows with the path's depth,
never with the number of routes.

Specificity (contract §4): segments compare left to right and the first difference decides
(literal over `{x}` over `{x*}`); then a named method beats `*`. The lookup is a depth-first walk
that tries the children in that order, so the first route it reaches is the most specific one
that matches both path and method. Two routes of the same shape whose methods overlap can never
be told apart; `add` refuses them, which is what makes the table's answer unique.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.policy.model import Kind, Route, Segment


@dataclass(slots=True)
class _Methods:
    named: dict[str, Route] = field(default_factory=dict)
    any: Route | None = None

    def pick(self, method: str) -> Route | None:
        route = self.named.get(method)
        if route is None and method == "HEAD":
            route = self.named.get("GET")  # a GET route answers HEAD unless a HEAD route exists
        return route if route is not None else self.any

    def add(self, route: Route) -> Route | None:
        """Register; returns the route it conflicts with, if any."""
        if route.methods is None:
            if self.any is not None:
                return self.any
            self.any = route
            return None
        for method in route.methods:
            if method in self.named:
                return self.named[method]
        for method in route.methods:
            self.named[method] = route
        return None


@dataclass(slots=True)
class _Node:
    literals: dict[str, _Node] = field(default_factory=dict)
    param: _Node | None = None
    here: _Methods = field(default_factory=_Methods)  # routes whose template ends at this node
    rest: _Methods = field(default_factory=_Methods)  # routes whose template ends with {x*} here


@dataclass(slots=True)  # not frozen: made per request, and a frozen dataclass's __init__ costs 3x
class Match:
    route: Route
    values: list[str]  # the template's parameters' values, in order

    @property
    def params(self) -> dict[str, str]:
        """By name. Made when asked for: a request the decision memo answers never needs them."""
        params = self.route.template.params
        return dict(zip(params, self.values, strict=True)) if params else {}


class RouteTable:
    """Built once per policy version; read-only afterwards (reload builds a new one)."""

    def __init__(self) -> None:
        self._root = _Node()

    def add(self, route: Route) -> Route | None:
        """Insert a route; returns the already-present route it is ambiguous with, if any."""
        node = self._root
        segments = route.template.segments
        for seg in segments:
            if seg.kind is Kind.REST:
                return node.rest.add(route)
            if seg.kind is Kind.LITERAL:
                node = node.literals.setdefault(seg.value, _Node())
            else:
                if node.param is None:
                    node.param = _Node()
                node = node.param
        return node.here.add(route)

    def match(self, method: str, segments: list[str]) -> Match | None:
        values: list[str] = []
        route = _first_branch(self._root, segments, method, values)
        if route is None:
            values.clear()
            route = _find(self._root, segments, 0, method, values)
            if route is None:
                return None
        return Match(route, values)


def _first_branch(node: _Node, segments: list[str], method: str, values: list[str]) -> Route | None:
    """The first branch `_find` tries (a literal child before the parameter), without recursion:
    what most requests match. When it reaches a route, that is `_find`'s answer too, since
    `_find` would have taken the same steps; None means "ask `_find`", not "no route"."""
    for seg in segments:
        child = node.literals.get(seg)
        if child is None:
            child = node.param
            if child is None or seg == "":
                return None
            values.append(seg)
        node = child
    return node.here.pick(method)


def _find(node: _Node, segments: list[str], i: int, method: str, values: list[str]) -> Route | None:
    if i == len(segments):
        return node.here.pick(method)
    seg = segments[i]
    child = node.literals.get(seg)
    if child is not None:
        found = _find(child, segments, i + 1, method, values)
        if found is not None:
            return found
    if seg == "":
        return None  # only a literal trailing "/" matches the empty segment a trailing / makes
    if node.param is not None:
        values.append(seg)
        found = _find(node.param, segments, i + 1, method, values)
        if found is not None:
            return found
        values.pop()
    found = node.rest.pick(method)
    if found is not None:
        values.append("/".join(segments[i:]))
    return found


def overlaps(a: tuple[Segment, ...], b: tuple[Segment, ...]) -> bool:
    """Whether some request path is matched by both templates (methods aside)."""
    if not a or not b:
        return not a and not b
    x, y = a[0], b[0]
    if x.kind is Kind.REST or y.kind is Kind.REST:
        # {x*} takes one non-empty segment or more: it meets anything that needs a segment here,
        # unless that is the empty segment of a trailing /.
        other = y if x.kind is Kind.REST else x
        return not (other.kind is Kind.LITERAL and other.value == "")
    if x.kind is Kind.LITERAL and y.kind is Kind.LITERAL:
        if x.value != y.value:
            return False
    elif x.kind is Kind.LITERAL or y.kind is Kind.LITERAL:
        literal = x if x.kind is Kind.LITERAL else y
        if literal.value == "":
            return False  # {x} never matches the empty segment of a trailing /
    return overlaps(a[1:], b[1:])
