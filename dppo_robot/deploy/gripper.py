"""Delivery of gripper goals (open / close) to an action server: wait, send, check, retry (ROS-free).

The bridge decides *what* the gripper should do (a command that changes side: close = grasp,
open = move); `GripperGoals` decides *when* a goal goes out and whether it arrived: it waits up
to `server_timeout_s` for the server, sends, waits up to `result_timeout_s` for the result, and
sends again (up to `retries` more times) when the server was missing, the goal was rejected,
the result said failure or never came. A newer command replaces a pending one. The ROS adapter
(dppo_robot_ros.bridge_node) calls `poll` from a timer and feeds back acceptance and results.
"""

from __future__ import annotations

from dataclasses import dataclass

from dppo_robot.deploy.config import GripperConfig


@dataclass
class Attempt:
    """One goal on its way: which side, attempt number, when it started waiting, its phase."""

    closed: bool
    number: int  # 1-based attempt number
    since_s: float  # start of the current phase
    phase: str = "wait_server"  # wait_server -> sent (awaiting acceptance and result)
    token: int = 0  # identifies the send, so late answers to an abandoned attempt are ignored


class GripperGoals:
    """Goal delivery state machine; counters and `last_error` go into the bridge's diagnostics."""

    def __init__(self, cfg: GripperConfig) -> None:
        self.cfg = cfg
        self.current: Attempt | None = None
        self.wanted: bool | None = None  # the side last commanded
        self.done: bool | None = None  # the side last confirmed by a successful result
        self._token = 0
        self.last_error = ""
        self.counters = {"sent": 0, "succeeded": 0, "failed": 0, "retried": 0, "gave_up": 0}

    def command(self, closed: bool, now_s: float) -> None:
        """The bridge's gripper command side; a change starts a new delivery (attempt 1)."""
        if closed == self.wanted:
            return
        self.wanted = closed
        self.current = Attempt(closed, 1, now_s)

    def poll(self, now_s: float, server_ready: bool) -> tuple[bool, int] | None:
        """(closed, token) when a goal should be sent now, else None; handles the timeouts."""
        a = self.current
        if a is None:
            return None
        if a.phase == "wait_server":
            if server_ready:
                self._token += 1
                a.phase, a.since_s, a.token = "sent", now_s, self._token
                self.counters["sent"] += 1
                return a.closed, a.token
            if now_s - a.since_s > self.cfg.server_timeout_s:
                self._fail(now_s, f"no gripper action server after {self.cfg.server_timeout_s:g} s")
            return None
        if now_s - a.since_s > self.cfg.result_timeout_s:
            self._fail(now_s, f"no gripper result within {self.cfg.result_timeout_s:g} s")
        return None

    def on_response(self, token: int, accepted: bool, now_s: float) -> None:
        if self._live(token) and not accepted:
            self._fail(now_s, "gripper goal rejected by the server")

    def on_result(self, token: int, success: bool, error: str, now_s: float) -> None:
        if not self._live(token):
            return
        if success:
            self.counters["succeeded"] += 1
            self.done, self.current, self.last_error = self.current.closed, None, ""
        else:
            self._fail(now_s, f"gripper goal failed: {error or 'no reason given'}")

    def _live(self, token: int) -> bool:
        return self.current is not None and self.current.phase == "sent" and self.current.token == token

    def _fail(self, now_s: float, why: str) -> None:
        a = self.current
        self.counters["failed"] += 1
        side = "close" if a.closed else "open"
        if a.number <= self.cfg.retries:
            self.counters["retried"] += 1
            self.last_error = f"{side}, attempt {a.number}: {why}; retrying"
            self.current = Attempt(a.closed, a.number + 1, now_s)
        else:
            self.counters["gave_up"] += 1
            self.last_error = f"{side}: {why}; gave up after {a.number} attempts"
            self.current = None

    @property
    def status(self) -> dict[str, object]:
        """Counters, the side confirmed last and the last error (for diagnostics)."""
        return {
            **{f"gripper.{k}": v for k, v in self.counters.items()},
            "gripper.confirmed": {None: "none", True: "closed", False: "open"}[self.done],
            "gripper.last_error": self.last_error or "none",
        }
