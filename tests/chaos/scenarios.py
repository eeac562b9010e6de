"""The chaos scenarios: the long set (``make chaos``) and the short one (``make test``, CI)."""

from __future__ import annotations

from tests.chaos.runner import Phase, Scenario

#: Client settings for fault scenarios: a 2 s request timeout (the latency spike exceeds it).
_FAST_API = (("MEETINGS_CDC_API_TIMEOUT_SECONDS", "2"),)
#: Heavy churn while paging: small pages so windows split and one-second windows page.
_PAGING = (
    ("MEETINGS_CDC_API_PER_PAGE", "20"),
    ("MEETINGS_CDC_API_RATE_LIMIT_PER_SECOND", "0"),
    ("MEETINGS_CDC_API_MAX_CONCURRENCY", "4"),
    ("MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS", "15"),
)

ERRORS = (
    Phase("503 burst", 6, {"error_rate": 0.6, "error_status": 503, "seed": 11}),
    Phase("500 burst", 6, {"error_rate": 0.3, "error_status": 500, "seed": 12}),
)
RATE_LIMITED = (Phase("429 storm", 10, {"rate_limit_per_second": 0.5, "seed": 13}),)
LATENCY = (
    Phase("latency beyond the timeout", 6, {"latency_ms": 2500, "seed": 14}),
    Phase("slow", 6, {"latency_ms": 400, "seed": 15}),
)
MALFORMED = (Phase("malformed bodies", 10, {"malformed_rate": 0.4, "seed": 16}),)
TRUNCATED = (
    Phase("truncated json", 6, {"truncated_rate": 0.3, "truncate_mode": "json", "seed": 17}),
    Phase("cut connections", 6, {"truncated_rate": 0.3, "truncate_mode": "connection", "seed": 18}),
)
BAD_ROWS = (Phase("bad rows", 15, {"bad_row_rate": 0.03, "seed": 19}),)

LONG: tuple[Scenario, ...] = (
    Scenario("sigkill", meetings=300, churn=20, kills=60, seed=101),
    Scenario("broker-restart", meetings=3000, churn=20, broker_outages=3, seconds=20, seed=102),
    Scenario("api-5xx", phases=ERRORS, env=_FAST_API, seed=103),
    Scenario("api-429", phases=RATE_LIMITED, env=_FAST_API, seed=104),
    Scenario("api-latency", phases=LATENCY, env=_FAST_API, seed=105),
    Scenario("api-malformed", phases=MALFORMED, env=_FAST_API, seed=106),
    Scenario("api-truncated", phases=TRUNCATED, env=_FAST_API, seed=107),
    Scenario("bad-rows", phases=BAD_ROWS, env=_FAST_API, seed=108),
    Scenario("skew-ahead-30s", skew=30, kills=5, seed=109),
    # Two replicas of one connector (docs/replicas.md): SIGKILL either, the owner of the event
    # or the standby, far enough apart for the group's session timeout to move the event.
    Scenario(
        "replica-kill",
        meetings=300,
        churn=20,
        kills=6,
        kill_after=(4.0, 12.0),
        replicas=2,
        env=(("MEETINGS_CDC_GROUP_SESSION_TIMEOUT_MS", "6000"),),
        seed=113,
    ),
    Scenario("skew-behind-30s", skew=-30, kills=5, seed=110),
    Scenario("churn-paging", meetings=2000, churn=120, seconds=40, kills=8, env=_PAGING, seed=111),
    # An NTP correction upstream: the API's clock goes back two minutes while meetings change
    # (versions written after it carry older times than versions already published); one
    # kill while the windows follow the clock back.
    Scenario(
        "clock-step-back",
        meetings=300,
        churn=20,
        seconds=25,
        clock_steps=((6, -120),),
        kills=1,
        kill_after=(8.0, 10.0),
        seed=112,
    ),
    Scenario("registry-sigkill", meetings=300, churn=20, kills=20, registry=True, seed=114),
    # A re-snapshot signal under churn among three replicas, its owner SIGKILLed half-way:
    # the event moves, the new owner goes on from the committed cursor (issue 32).
    Scenario(
        "resnapshot-failover",
        meetings=4000,
        churn=10,
        seconds=10,
        replicas=3,
        resnapshot=True,
        env=(("MEETINGS_CDC_GROUP_SESSION_TIMEOUT_MS", "6000"),),
        seed=115,
    ),
)

#: About 3 minutes on an idle 2-core machine.
SHORT: tuple[Scenario, ...] = (
    Scenario("sigkill-short", meetings=150, churn=20, kills=5, skew=30, seed=201),
    Scenario(
        "broker-restart-short",
        meetings=2000,
        churn=10,
        broker_outages=1,
        outage_seconds=(2.0, 3.0),
        seconds=5,
        seed=202,
    ),
    Scenario(
        "api-faults-short",
        meetings=150,
        churn=20,
        skew=-30,
        env=_FAST_API,
        phases=(
            Phase("503 burst", 3, {"error_rate": 0.5, "seed": 21}),
            Phase("429 storm", 4, {"rate_limit_per_second": 0.5, "seed": 22}),
            Phase("latency beyond the timeout", 3, {"latency_ms": 2500, "seed": 23}),
            Phase("malformed bodies", 3, {"malformed_rate": 0.4, "seed": 24}),
            Phase("truncated", 3, {"truncated_rate": 0.3, "truncate_mode": "connection"}),
            Phase("bad rows", 5, {"bad_row_rate": 0.03, "seed": 25}),
        ),
        seed=203,
    ),
    Scenario(
        "churn-paging-short", meetings=1000, churn=100, seconds=15, kills=3, env=_PAGING, seed=204
    ),
    # With a real schema registry (Apicurio): the Confluent wire format, schemas registered
    # again at each start, the state restored through the registry's ids after each SIGKILL;
    # kills far enough apart for each process to restore its state and commit cycles.
    Scenario(
        "registry-sigkill-short",
        meetings=150,
        churn=20,
        kills=3,
        kill_after=(8.0, 12.0),
        registry=True,
        seed=205,
    ),
)

PROFILES = {"long": LONG, "short": SHORT}
