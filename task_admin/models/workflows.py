from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


def new_node_key() -> str:
    return uuid.uuid4().hex[:10]


class WorkflowManager(models.Manager):
    def get_by_natural_key(self, name):
        return self.get(name=name)


class Workflow(models.Model):
    """A tree of task invocations combined with group, chain and chord."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    description = models.TextField(_("description"), blank=True)
    enabled = models.BooleanField(
        _("enabled"), default=True, help_text=_("Disabled workflows cannot be run or scheduled.")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = WorkflowManager()

    class Meta:
        verbose_name = _("workflow")
        verbose_name_plural = _("workflows")
        ordering = ["name"]
        permissions = [
            ("run_workflow", _("Can run workflows")),
            ("schedule_workflow", _("Can schedule workflows")),
        ]

    def __str__(self) -> str:
        return self.name

    def natural_key(self):
        return (self.name,)


class NodeKind(models.TextChoices):
    TASK = "task", _("task")
    GROUP = "group", _("group")
    CHAIN = "chain", _("chain")
    CHORD = "chord", _("chord")
    WORKFLOW = "workflow", _("reused workflow")


class NodeRole(models.TextChoices):
    # Children of a group or chain have no role; a chord's children are its header or its body.
    STEP = "", _("step")
    HEADER = "header", _("chord header")
    BODY = "body", _("chord body")


class WorkflowNodeManager(models.Manager):
    def get_by_natural_key(self, key, workflow_name):
        return self.get(key=key, workflow__name=workflow_name)

    def insert_tree(self, rows: Iterable[WorkflowNode]) -> None:
        """Insert unsaved nodes whose ``parent`` is set as an object (another of ``rows``, or
        a saved node): one INSERT per level of the tree, parents first, so that each child
        gets its parent's new id. A 1,000-node tree is a handful of queries.

        What composer, import and copy save through (they differ in where the rows come
        from, never in how they are written).
        """
        rows = list(rows)
        given = {id(row) for row in rows}
        depth: dict[int, int] = {}
        for row in rows:
            chain = []
            node = row
            while id(node) not in depth:
                chain.append(node)
                parent = node.parent if WorkflowNode.parent.is_cached(node) else None
                if parent is None or id(parent) not in given:
                    break
                if len(chain) > len(rows):
                    raise ValueError("the nodes' parents form a cycle")
                node = parent
            base = depth.get(id(node), -1)
            for offset, walked in enumerate(reversed(chain), start=1):
                depth[id(walked)] = base + offset
        levels: dict[int, list[WorkflowNode]] = {}
        for row in rows:
            levels.setdefault(depth[id(row)], []).append(row)
        for level in sorted(levels):
            self.bulk_create(levels[level])


class WorkflowNode(models.Model):
    workflow = models.ForeignKey(
        Workflow, on_delete=models.CASCADE, related_name="nodes", verbose_name=_("workflow")
    )
    key = models.SlugField(
        _("key"),
        max_length=40,
        default=new_node_key,
        help_text=_("Identifies the node within its workflow (natural key in fixtures)."),
    )
    parent = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="children",
        verbose_name=_("parent"),
    )
    kind = models.CharField(_("kind"), max_length=10, choices=NodeKind.choices)
    role = models.CharField(_("role"), max_length=10, choices=NodeRole.choices, blank=True)
    position = models.PositiveIntegerField(_("position"), default=0)
    label = models.CharField(_("label"), max_length=200, blank=True)
    invocation = models.ForeignKey(
        "task_admin.TaskInvocation",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="nodes",
        verbose_name=_("task invocation"),
    )
    reuse = models.ForeignKey(
        Workflow,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reused_by",
        verbose_name=_("reused workflow"),
    )

    objects = WorkflowNodeManager()

    class Meta:
        verbose_name = _("workflow node")
        verbose_name_plural = _("workflow nodes")
        ordering = ["workflow", "parent_id", "role", "position"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind=NodeKind.TASK, invocation__isnull=False, reuse__isnull=True)
                | Q(kind=NodeKind.WORKFLOW, reuse__isnull=False, invocation__isnull=True)
                | Q(
                    kind__in=[NodeKind.GROUP, NodeKind.CHAIN, NodeKind.CHORD],
                    invocation__isnull=True,
                    reuse__isnull=True,
                ),
                name="task_admin_node_kind_matches_target",
                violation_error_message=_(
                    "A task node needs a task invocation, a reused-workflow node needs a "
                    "workflow, and group, chain and chord nodes need neither."
                ),
            ),
            models.CheckConstraint(
                condition=Q(role__in=["", "header", "body"]),
                name="task_admin_node_role_valid",
            ),
            models.UniqueConstraint(
                fields=["workflow", "key"], name="task_admin_node_key_unique_in_workflow"
            ),
            models.UniqueConstraint(
                fields=["parent", "role", "position"], name="task_admin_node_position_unique"
            ),
            models.UniqueConstraint(
                fields=["workflow"],
                condition=Q(parent__isnull=True),
                name="task_admin_node_one_root",
                violation_error_message=_("A workflow has exactly one top-level node."),
            ),
            models.UniqueConstraint(
                fields=["parent"],
                condition=Q(role="body"),
                name="task_admin_node_one_chord_body",
                violation_error_message=_("A chord has exactly one body."),
            ),
        ]

    def __str__(self) -> str:
        return self.label or self.get_kind_display()

    def clone(self, **changes) -> WorkflowNode:
        """An unsaved node like this one (kind, role, position, label, what it runs), with
        ``changes`` (its workflow, parent, ...): what a copy or a re-saved tree is made of."""
        fields = {
            "kind": self.kind, "role": self.role, "position": self.position,
            "label": self.label, "invocation_id": self.invocation_id, "reuse_id": self.reuse_id,
        }
        return WorkflowNode(**{**fields, **changes})

    def natural_key(self):
        return (self.key, *self.workflow.natural_key())

    natural_key.dependencies = ["task_admin.workflow", "task_admin.taskinvocation"]
