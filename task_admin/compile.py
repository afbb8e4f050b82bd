"""The one bridge between stored workflows and the pure canvas spec."""

from __future__ import annotations

from dataclasses import dataclass, replace

from django.db.models.expressions import RawSQL
from django.utils.translation import gettext as _

from task_admin import canvas
from task_admin.canvas import paths
from task_admin.conf import get_config
from task_admin.models import NodeKind, NodeRole, Workflow, WorkflowNode
from task_admin.models.rows import Rows
from task_admin.tree import Tree


class InvalidWorkflow(ValueError):
    def __init__(self, problems: list[canvas.Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


NODE_REF = "node:"


def node_ref(node: WorkflowNode) -> str:
    """The ``ref`` a spec keeps for a stored node: how a leaf finds its row again."""
    return f"{NODE_REF}{node.pk}"


def node_pk(ref: str | None) -> int | None:
    """The stored node's primary key in a ``ref`` made by ``node_ref`` (None for other refs)."""
    if ref and ref.startswith(NODE_REF):
        return int(ref[len(NODE_REF):])
    return None


def _reachable_workflows_sql() -> str:
    # One recursive query finds the workflow and every workflow it reuses, at any depth.
    # UNION (not UNION ALL) makes a reuse cycle terminate: compile() reports it.
    table = WorkflowNode._meta.db_table
    return (
        "WITH RECURSIVE reachable(id) AS ("
        " SELECT CAST(%s AS BIGINT)"
        f" UNION SELECT n.reuse_id FROM {table} n JOIN reachable r ON n.workflow_id = r.id"
        " WHERE n.reuse_id IS NOT NULL"
        ") SELECT id FROM reachable"
    )


def _users_sql(seed: str) -> str:
    # The other way round: the seed workflows and every workflow reusing one of them, at any
    # depth (UNION stops at a cycle).
    table = WorkflowNode._meta.db_table
    return (
        f"WITH RECURSIVE users(id) AS ({seed}"
        f" UNION SELECT n.workflow_id FROM {table} n JOIN users u ON n.reuse_id = u.id"
        ") SELECT id FROM users"
    )


def workflows_using(invocation_id: int):
    """The workflows that run the invocation, directly or through a reused workflow."""
    from task_admin.models import Workflow

    table = WorkflowNode._meta.db_table
    seed = f"SELECT n.workflow_id FROM {table} n WHERE n.invocation_id = CAST(%s AS BIGINT)"
    return Workflow.objects.filter(pk__in=RawSQL(_users_sql(seed), [invocation_id]))


def workflows_reusing(workflow_id: int):
    """The workflow and every workflow that reuses it, at any depth."""
    from task_admin.models import Workflow

    seed = "SELECT CAST(%s AS BIGINT)"
    return Workflow.objects.filter(pk__in=RawSQL(_users_sql(seed), [workflow_id]))


def load_nodes(workflow_id: int) -> list[WorkflowNode]:
    """Every node of the workflow and of the workflows it reuses, with their invocations and
    reused workflows (as ``select_related`` gives them).

    On every run start, so built for it: one indexed query when the workflow reuses none
    (most do), and only then the recursive query for the reused ones, which costs the database
    several times more to plan and run; the SQL is written once per process (the ORM spent
    about 1 ms compiling it per call) and rows become models through ``from_db``, as the ORM
    does.
    """
    loader = _NodeLoader.get()
    nodes = loader.fetch(loader.direct, [workflow_id])
    if any(node.reuse_id is not None for node in nodes):
        nodes += loader.fetch(loader.reused, [workflow_id, workflow_id])
    return nodes


@dataclass(frozen=True)
class Fingerprint:
    """What a workflow's spec was compiled from, as a condition the database can check:
    ``sql`` (with ``params``) is true while the rows are as they were read."""

    sql: str
    params: tuple


def load_fingerprinted(workflow_id: int) -> tuple[list[WorkflowNode], Fingerprint | None]:
    """``load_nodes``, with a ``Fingerprint`` of the rows read (PostgreSQL; None elsewhere and
    when the workflow reuses others, whose trees are read recursively): one statement."""
    loader = _NodeLoader.get()
    if loader.fingerprinted is None:
        return load_nodes(workflow_id), None
    from django.db import connections

    connection = connections[loader.alias]
    with connection.cursor() as cursor:
        cursor.execute(loader.fingerprinted, [workflow_id, workflow_id])
        rows = cursor.fetchall()
    nodes = loader.build(connection, rows)
    if any(node.reuse_id is not None for node in nodes):
        return nodes + loader.fetch(loader.reused, [workflow_id, workflow_id]), None
    if not nodes:
        return nodes, None
    return nodes, Fingerprint(f"{loader.fingerprint} = %s", (workflow_id, rows[0][-1]))


class _NodeLoader:
    """The SQL of ``load_nodes`` and what turns its rows into models (per database)."""

    _cache: dict[str, _NodeLoader] = {}

    @classmethod
    def get(cls) -> _NodeLoader:
        from django.db import DEFAULT_DB_ALIAS, connections, router

        alias = router.db_for_read(WorkflowNode) or DEFAULT_DB_ALIAS
        loader = cls._cache.get(alias)
        if loader is None:
            loader = cls._cache[alias] = cls(connections[alias])
        return loader

    def __init__(self, connection):
        from task_admin.models import TaskInvocation

        self.alias = connection.alias  # connections are per thread: looked up on each fetch
        quote = connection.ops.quote_name
        # The node, its invocation and the workflow it reuses, side by side in each row.
        self.parts = (Rows.of(WorkflowNode), Rows.of(TaskInvocation), Rows.of(Workflow))
        node, invocation, reused = self.parts
        columns = [*node.columns(connection, "n"), *invocation.columns(connection, "i"),
                   *reused.columns(connection, "w")]
        meta = WorkflowNode._meta
        invocation_fk, reuse_fk = meta.get_field("invocation"), meta.get_field("reuse")
        self.setters = (invocation_fk.set_cached_value, reuse_fk.set_cached_value)
        select = (
            f"SELECT {', '.join(columns)} FROM {quote(meta.db_table)} n"
            f" LEFT OUTER JOIN {quote(TaskInvocation._meta.db_table)} i"
            f" ON n.{quote(invocation_fk.column)} = i.{quote(TaskInvocation._meta.pk.column)}"
            f" LEFT OUTER JOIN {quote(Workflow._meta.db_table)} w"
            f" ON n.{quote(reuse_fk.column)} = w.{quote(Workflow._meta.pk.column)}"
        )
        order = " ORDER BY n.workflow_id, n.parent_id, n.role, n.position, n.id"
        self.direct = f"{select} WHERE n.workflow_id = %s{order}"
        # The reused workflows at any depth, the workflow itself left out (loaded already).
        self.reused = (
            f"{select} WHERE n.workflow_id IN ({_reachable_workflows_sql()})"
            f" AND n.workflow_id <> %s{order}"
        )
        self.fingerprint = None
        self.fingerprinted = None
        if connection.vendor == "postgresql":
            # The id, xmin and cmin of every node and of its invocation, in one string. Each
            # write of a row makes a new version of it (save, QuerySet.update, raw SQL, an
            # import), stamped with the writing transaction (xmin) and, within it, the
            # command (cmin: a transaction that writes a row twice gives it the same xmin),
            # and an added or deleted node changes the set: the fingerprint changes with
            # anything this workflow's spec is compiled from, reused workflows aside (a tree
            # that reuses one is never fingerprinted). Row locks (the foreign key checks of a
            # run start) leave both alone.
            self.fingerprint = (
                "(SELECT md5(string_agg(n.id || ':' || n.xmin || ':' || n.cmin || ':'"
                " || COALESCE(i.xmin || ':' || i.cmin, '-'), ',' ORDER BY n.id))"
                f" FROM {quote(meta.db_table)} n"
                f" LEFT OUTER JOIN {quote(TaskInvocation._meta.db_table)} i"
                f" ON n.{quote(invocation_fk.column)} = i.{quote(TaskInvocation._meta.pk.column)}"
                " WHERE n.workflow_id = %s::bigint)"
            )
            # The nodes and the fingerprint of the rows read, in one statement (one snapshot).
            self.fingerprinted = (
                f"SELECT {', '.join(columns)}, {self.fingerprint}"
                f"{select[select.index(' FROM '):]} WHERE n.workflow_id = %s{order}"
            )

    def fetch(self, sql: str, params: list) -> list[WorkflowNode]:
        from django.db import connections

        connection = connections[self.alias]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return self.build(connection, rows)

    def build(self, connection, rows) -> list[WorkflowNode]:
        node_rows, invocation_rows, reused_rows = self.parts
        a, b = len(node_rows), len(node_rows) + len(invocation_rows)
        c = b + len(reused_rows)
        set_invocation, set_reuse = self.setters
        nodes = []
        for row in rows:
            node = node_rows.build(connection, row[:a])
            set_invocation(node, invocation_rows.build(connection, row[a:b]))
            set_reuse(node, reused_rows.build(connection, row[b:c]))
            nodes.append(node)
        return nodes


class _Builder:
    def __init__(self, nodes: list[WorkflowNode]):
        self.tree = Tree(nodes)
        self.problems: list[canvas.Problem] = []
        self.max_depth = get_config()["MAX_DEPTH"]

    def problem(self, path: str, node: WorkflowNode | None, message: str) -> None:
        self.problems.append(canvas.Problem(path, message, node_ref(node) if node else None))

    def build_workflow(
        self, workflow_id: int, name: str, path: str, stack: tuple[str, ...]
    ) -> canvas.Node | None:
        if name in stack:
            cycle = " → ".join((*stack, name))
            self.problem(path, None, _("reuse cycle: %(cycle)s") % {"cycle": cycle})
            return None
        root = self.tree.roots.get(workflow_id)
        if root is None:
            self.problem(path, None, _("workflow “%(name)s” has no nodes") % {"name": name})
            return None
        return self.build(root, path, (*stack, name))

    def build(self, node: WorkflowNode, path: str, stack: tuple[str, ...]) -> canvas.Node | None:
        ref, label = node_ref(node), node.label
        if paths.depth(path) > self.max_depth:
            # Stop before Python's recursion limit; canvas.validate words the depth problem.
            message = _("nested deeper than %(max)s levels") % {"max": self.max_depth}
            self.problem(path, node, message)
            return None
        kids = self.tree.children(node)
        if node.kind == NodeKind.TASK:
            if kids:
                self.problem(path, node, _("a task node cannot have children"))
            return node.invocation.to_spec(ref=ref, label=label)
        if node.kind == NodeKind.WORKFLOW:
            if kids:
                self.problem(path, node, _("a reused-workflow node cannot have children"))
            built = self.build_workflow(node.reuse_id, node.reuse.name, path, stack)
            if built is not None and not built.label:
                # The graph and the canvas text then say which workflow is reused here.
                built = replace(built, label=label or node.reuse.name)
            return built
        if node.kind in (NodeKind.GROUP, NodeKind.CHAIN):
            for kid in kids:
                if kid.role != NodeRole.STEP:
                    self.problem(path, kid, _("only a chord has header and body nodes"))
            steps = self.tree.steps(node)
            built = [self.build(kid, paths.step(path, i), stack) for i, kid in enumerate(steps)]
            cls = canvas.Group if node.kind == NodeKind.GROUP else canvas.Chain
            return cls(tasks=tuple(b for b in built if b is not None), ref=ref, label=label)
        # A chord: header nodes, then exactly one body (the database allows at most one).
        for kid in self.tree.steps(node):
            self.problem(path, kid, _("a chord's nodes must be in its header or its body"))
        header, bodies = self.tree.header(node), self.tree.bodies(node)
        built = [self.build(kid, paths.header(path, i), stack) for i, kid in enumerate(header)]
        if not bodies:
            self.problem(path, node, _("chord without a body"))
            return None
        body = self.build(bodies[0], paths.body(path), stack)
        if body is None:
            return None
        return canvas.Chord(
            header=tuple(b for b in built if b is not None), body=body, ref=ref, label=label
        )


def workflow_to_spec(workflow: Workflow, nodes: list[WorkflowNode] | None = None) -> canvas.Node:
    """The spec of a stored workflow; raises ``InvalidWorkflow`` on structural problems.

    Two queries at most whatever the size of the tree (the nodes with their invocations and
    reused workflows, in one query), so ``nodes`` may be passed when they are already loaded.
    """
    tree = _Builder(load_nodes(workflow.pk) if nodes is None else nodes)
    spec = tree.build_workflow(workflow.pk, workflow.name, paths.ROOT, ())
    if tree.problems or spec is None:
        raise InvalidWorkflow(tree.problems)
    return spec
