"""Dispatch tasks for bay overflows: open -> acknowledged -> resolved -> closed, re-opened on relapse.

Every transition is a ``dispatch_task`` EventDraft with the task's key (one incident upstream).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.errors import CommandError
from edge.types import EventDraft, Severity

OPEN, ACKNOWLEDGED, RESOLVED, CLOSED = "open", "acknowledged", "resolved", "closed"


@dataclass(slots=True)
class DispatchTask:
    task_id: str
    camera_id: str
    bay_id: str
    capacity: int
    count: int
    operators: list[str]
    opened_t: float
    opened_ts: float
    first_opened_ts: float
    state: str = OPEN
    acknowledged_t: float | None = None
    acknowledged_ts: float | None = None
    acknowledged_by: str | None = None
    resolved_t: float | None = None
    resolved_ts: float | None = None
    resolved_by: str | None = None
    under_since_t: float | None = None
    reopen_count: int = 0
    operator_counts: dict[str, int] = field(default_factory=dict)

    @property
    def excess(self) -> int:
        return max(0, self.count - self.capacity)

    def action(self) -> str:
        n = self.excess
        if n == 0:
            return f"none: {self.bay_id} is within capacity"
        what = f"remove {n} bike{'s' if n != 1 else ''} from {self.bay_id}"
        if self.operator_counts:
            parts = ", ".join(
                f"{name} {c}" for name, c in sorted(self.operator_counts.items(), key=lambda kv: -kv[1])
            )
            what += f" ({parts})"
        return what

    def payload(self) -> dict[str, object]:
        tta = None if self.acknowledged_t is None else round(self.acknowledged_t - self.opened_t, 1)
        ttr = None if self.resolved_t is None else round(self.resolved_t - self.opened_t, 1)
        return {
            "task_id": self.task_id,
            "bay_id": self.bay_id,
            "state": self.state,
            "count": self.count,
            "capacity": self.capacity,
            "excess": self.excess,
            "action": self.action(),
            "operators": list(self.operators),
            "opened_ts": self.opened_ts,
            "acknowledged_ts": self.acknowledged_ts,
            "acknowledged_by": self.acknowledged_by,
            "resolved_ts": self.resolved_ts,
            "resolved_by": self.resolved_by,
            "time_to_acknowledge_s": tta,
            "time_to_resolve_s": ttr,
            "reopen_count": self.reopen_count,
        }


class DispatchBook:
    """All tasks of one camera (at most one live task per bay)."""

    def __init__(
        self, camera_id: str, verify_s: float, reopen_s: float, bay_operators: dict[str, str] | None = None
    ) -> None:
        self.camera_id = camera_id
        self.bay_operators = dict(bay_operators or {})  # zone ``operator``: who owns a bay
        self.verify_s = verify_s
        self.reopen_s = reopen_s
        self.by_bay: dict[str, DispatchTask] = {}

    def _tr(self, task: DispatchTask, phase: str, t: float, ts: float, reason: str) -> EventDraft:
        sev: Severity = (
            "major" if task.state == OPEN else "info" if task.state in (RESOLVED, CLOSED) else "minor"
        )
        return EventDraft(
            kind="dispatch_task",
            phase=phase,  # type: ignore[arg-type]
            key=f"dispatch_task:{task.task_id}",
            t=t,
            ts=ts,
            camera_id=self.camera_id,
            zone_id=task.bay_id,
            severity=sev,
            severity_reason=reason,
            started_ts=task.first_opened_ts,
            payload=task.payload(),
        )

    def overflow_started(
        self, bay_id: str, count: int, capacity: int, operators: dict[str, int], t: float, ts: float
    ) -> list[EventDraft]:
        task = self.by_bay.get(bay_id)
        names = sorted(operators, key=lambda k: -operators[k])
        owner = self.bay_operators.get(bay_id)
        if owner is not None and owner not in names:
            names.append(owner)  # the bay's own operator is told even when no livery was recognised
        if task is not None and task.state in (OPEN, ACKNOWLEDGED):
            task.count, task.operator_counts, task.operators = count, dict(operators), names
            task.under_since_t = None
            return [self._tr(task, "update", t, ts, f"bay {bay_id} still over capacity: {task.action()}")]
        if (
            task is not None
            and task.state == RESOLVED
            and task.resolved_t is not None
            and t - task.resolved_t <= self.reopen_s
        ):
            task.state = OPEN
            task.reopen_count += 1
            task.opened_t, task.opened_ts = t, ts
            task.acknowledged_t = task.acknowledged_ts = task.resolved_t = task.resolved_ts = None
            task.acknowledged_by = task.resolved_by = None
            task.count, task.operator_counts, task.operators = count, dict(operators), names
            task.under_since_t = None
            return [
                self._tr(
                    task,
                    "update",
                    t,
                    ts,
                    f"re-opened: overflow returned within {self.reopen_s:.0f} s; {task.action()}",
                )
            ]
        out: list[EventDraft] = []
        if task is not None and task.state == RESOLVED:
            out.extend(self._close(task, t, ts))
        task = DispatchTask(
            task_id=f"{self.camera_id}-{bay_id}-{int(ts)}",
            camera_id=self.camera_id,
            bay_id=bay_id,
            capacity=capacity,
            count=count,
            operators=names,
            operator_counts=dict(operators),
            opened_t=t,
            opened_ts=ts,
            first_opened_ts=ts,
        )
        self.by_bay[bay_id] = task
        out.append(
            self._tr(
                task, "start", t, ts, f"bay {bay_id} over capacity ({count} > {capacity}): {task.action()}"
            )
        )
        return out

    def _close(self, task: DispatchTask, t: float, ts: float) -> list[EventDraft]:
        task.state = CLOSED
        self.by_bay.pop(task.bay_id, None)
        return [
            self._tr(task, "end", t, ts, f"closed: no overflow within {self.reopen_s:.0f} s of resolution")
        ]

    def observe(
        self, bay_id: str, count: int, operators: dict[str, int], t: float, ts: float
    ) -> list[EventDraft]:
        """The camera's view of a bay: resolves a task after ``verify_s`` at/under capacity; closes it later."""
        task = self.by_bay.get(bay_id)
        if task is None:
            return []
        if task.state in (OPEN, ACKNOWLEDGED):
            task.count, task.operator_counts = count, dict(operators)
            if count > task.capacity:
                task.under_since_t = None
                return []
            if task.under_since_t is None:
                task.under_since_t = t
            if t - task.under_since_t >= self.verify_s - 1e-9:
                task.count = count
                task.state = RESOLVED
                task.resolved_t, task.resolved_ts, task.resolved_by = t, ts, "camera"
                return [
                    self._tr(
                        task,
                        "update",
                        t,
                        ts,
                        f"resolved: bay {bay_id} seen at {count}/{task.capacity} for {self.verify_s:.0f} s",
                    )
                ]
            return []
        if task.state == RESOLVED and task.resolved_t is not None and t - task.resolved_t > self.reopen_s:
            return self._close(task, t, ts)
        return []

    def _find(self, task_id: str) -> DispatchTask:
        for task in self.by_bay.values():
            if task.task_id == task_id:
                return task
        known = ", ".join(t.task_id for t in self.by_bay.values()) or "none"
        raise CommandError(f"unknown task_id {task_id!r}; live tasks on {self.camera_id}: {known}")

    def acknowledge(
        self, task_id: str, by: str | None, t: float, ts: float
    ) -> tuple[dict[str, object], list[EventDraft]]:
        task = self._find(task_id)
        if task.state == ACKNOWLEDGED:
            return {"task_id": task_id, "state": task.state, "changed": False}, []
        if task.state != OPEN:
            raise CommandError(f"task {task_id} is {task.state}; only an open task can be acknowledged")
        task.state = ACKNOWLEDGED
        task.acknowledged_t, task.acknowledged_ts, task.acknowledged_by = t, ts, by
        tr = self._tr(task, "update", t, ts, f"acknowledged after {t - task.opened_t:.0f} s")
        return {
            "task_id": task_id,
            "state": task.state,
            "changed": True,
            "time_to_acknowledge_s": round(t - task.opened_t, 1),
        }, [tr]

    def resolve(
        self, task_id: str, by: str | None, t: float, ts: float
    ) -> tuple[dict[str, object], list[EventDraft]]:
        task = self._find(task_id)
        if task.state == RESOLVED:
            return {"task_id": task_id, "state": task.state, "changed": False}, []
        task.state = RESOLVED
        task.resolved_t, task.resolved_ts, task.resolved_by = t, ts, by or "operator"
        tr = self._tr(
            task, "update", t, ts, f"resolved by {task.resolved_by} after {t - task.opened_t:.0f} s"
        )
        return {
            "task_id": task_id,
            "state": task.state,
            "changed": True,
            "time_to_resolve_s": round(t - task.opened_t, 1),
        }, [tr]

    def live(self) -> list[DispatchTask]:
        return list(self.by_bay.values())
