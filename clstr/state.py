"""The --state snapshot: what a run is doing now, as one JSON object (schema 1).

Written by the supervisor at most once a second and once at the end, replacing the
file atomically (a reader sees a whole snapshot, never a part)::

    {
      "schema": 1,
      "state": "running" | "stopping" | "finished",
      "started": 1795600000.0,          # epoch seconds
      "updated": 1795600042.5,
      "elapsed": 42.5,                  # seconds
      "counts": {"jobs": 500, "succeeded": 210, "failed": 2, "not_run": 0,
                 "running": 16, "pending": 272},
      "rate": 5.1,                      # jobs complete a second, or null before the first
      "eta": 53.0,                      # seconds left at that rate, or null
      "nodes": {
        "lab01": {"status": "up", "slots": 4, "running": 4, "attempts": 57, "reason": "",
                  "next_probe_in": null, "configuration_error": false, "jump_host": null,
                  "out": [{"left": ..., "reason": "refused", "back": ..., "failed_probes": 1}]},
        "lab07": {"status": "retired", "reason": "refused", "next_probe_in": 24.0, ...}
      },
      "running": [{"node": "lab01", "slot": 0, "seq": 211, "command": "...", "running_for": 3.2}]
    }

``status``: ``up``; ``retired`` (``reason`` says why; ``next_probe_in``: seconds to its next
probe, or null if it stays out); ``probing`` (its probe is due or runs); ``removed`` (a live
node list dropped it: no new job, a running one finishes). ``slots``: those it has now.
``jump_host``: the ProxyJump host it shares a limit of handshakes through, once one refused
(else null). ``gateway``: the gateway that drives it now (null: this clstr itself); ``gateways``:
each gateway's ``state`` (``starting``, ``up``, ``refused``, ``lost``), ``why``, ``losses``.
``counts`` add up:
jobs = succeeded + failed + not_run + running + pending. When the run has ended, ``state``
is ``finished`` and the counts are those of the summary and ``--json``.
"""
from .scheduler import FAILED, NOT_RUN, SUCCEEDED

SCHEMA = 1


def snapshot(sched, state, started, now, clock_now, slot_started, rate=None, eta=None, gateways=None):
    """The snapshot of ``sched`` (a Scheduler) as a dict.

    ``started``/``now``: epoch seconds of the run's start and of now; ``clock_now``: the
    scheduler's clock now (its probes are due on it); ``slot_started``: epoch seconds each
    slot's running attempt started; ``gateways``: each gateway's state (GatewayPool.states), if any.
    """
    c = sched.counts()
    running = sched.running()
    per_node = {}
    for node, _, _ in running.values():
        per_node[node] = per_node.get(node, 0) + 1
    nodes = {}
    for n in sched.nodes.values():
        status = {"up": "up", "retired": "retired", "probe": "probing"}[n.status]
        if n.removed:
            status = "removed"
        nodes[n.name] = {
            "status": status, "slots": sum(1 for i in n.slots if not sched.slots[i].removed),
            "running": per_node.get(n.name, 0), "attempts": n.jobs,
            "reason": n.reason,
            "next_probe_in": (round(max(0.0, n.next_probe - clock_now), 1)
                              if n.status == "retired" and n.next_probe is not None and state != "finished"
                              else None),
            "configuration_error": n.out and n.permanent,
            "jump_host": n.jump_host,
            "gateway": n.gateway,
            "out": [{"left": round(a.left, 3), "reason": a.reason,
                     "back": None if a.back is None else round(a.back, 3), "failed_probes": a.probes}
                    for a in n.history],
        }
    return {
        "schema": SCHEMA,
        "state": state,
        "started": round(started, 3),
        "updated": round(now, 3),
        "elapsed": round(now - started, 3),
        "counts": {"jobs": len(sched.jobs), "succeeded": c[SUCCEEDED], "failed": c[FAILED], "not_run": c[NOT_RUN],
                   "running": len(running), "pending": sched.waiting()},
        "rate": None if rate is None else round(rate, 3),
        "eta": None if eta is None else round(eta, 1),
        "nodes": nodes,
        "running": [{"node": node, "slot": idx, "seq": seq, "command": cmd,
                     "running_for": round(max(0.0, now - slot_started[idx]), 3)}
                    for idx, (node, seq, cmd) in sorted(running.items())],
        "gateways": gateways or {},
    }
