"""Where does one `/prod-access` quick request's time go before its ack? A profile of the bot's
own HTTP app handling signed requests one after the other, in this process, without a network
between: what is left is what the bot does per request (signature check, replay record, policy
check, the request's row and audit event, the answer), the part bench/ack_latency.py cannot
take apart.

    python bench/profile_ack.py                 # 2,000 requests: per-request cost, top functions
    python bench/profile_ack.py --requests 500 --top 40

The bot is built as `prod-access serve --http` builds it (SQLite in a temp directory, the
bench policy, a fake Slack Web API in this process, the work after the ack on its pool). The
profile covers the thread that answers, i.e. the ack path; the work after the ack is waited for
outside the profile (its cards are counted).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.ack_servers import (  # noqa: E402
    APPROVER_CHANNEL,
    APPROVERS,
    BOT_TOKEN,
    REQUESTERS,
    SIGNING_SECRET,
    WEBHOOK_SECRET,
    fake_users,
)
from bench.report import print_machine  # noqa: E402
from tests.fakes.policy import write_policy  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402
from tests.fakes.slack_requests import sign  # noqa: E402
from tests.fakes.webhook_receiver import WebhookReceiver  # noqa: E402


def environ_for(n: int) -> dict[str, Any]:
    body = urllib.parse.urlencode(
        {
            "command": "/prod-access",
            "text": f"orders-api read 15m PAY-{n} bench {n}",
            "user_id": REQUESTERS[n % len(REQUESTERS)],
            "user_name": "bench",
            "team_id": "T0BENCH",
            "channel_id": "C0BENCH",
            "trigger_id": f"trigger-{n}",
            "response_url": "http://127.0.0.1:9/unused",
        }
    ).encode()
    timestamp = str(int(time.time()))
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/slack/events",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_X_SLACK_REQUEST_TIMESTAMP": timestamp,
        "HTTP_X_SLACK_SIGNATURE": sign(SIGNING_SECRET, timestamp, body),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "3000",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--top", type=int, default=30, help="functions shown, by own time")
    args = parser.parse_args(argv)
    print_machine()
    tmp = Path(tempfile.mkdtemp(prefix="prod-access-profile-"))
    with FakeSlack(users=fake_users()) as slack, WebhookReceiver(WEBHOOK_SECRET) as webhook:
        policy = write_policy(
            tmp / "policy.yml", webhook.url, approvers=APPROVERS, channel=APPROVER_CHANNEL
        )
        os.environ.update(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=slack.url,
            DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}",
            POLICY_FILE=str(policy),
            TEST_WEBHOOK_SECRET=WEBHOOK_SECRET,
            LOG_FORMAT="json",
            LOG_LEVEL="warning",
        )
        from app.config import load_settings
        from app.logging import setup_logging
        from app.runtime import build_bot
        from app.web import make_wsgi_app

        settings = load_settings()
        setup_logging("json", "warning")
        bot = build_bot(settings)
        bot.start_timers()
        wsgi = make_wsgi_app(bot)

        def one(n: int) -> None:
            answer: list[str] = []
            body = b"".join(wsgi(environ_for(n), lambda status, headers: answer.append(status)))
            if not answer or not answer[0].startswith("200") or b"approvers" not in body:
                raise SystemExit(f"request {n}: {answer} {body[:200]!r}")

        # As under a burst: the work after each ack (its card, its DM) waits until the profile
        # is over, so what is measured is the answering alone.
        burst = bot.later.answering()
        burst.__enter__()
        for n in range(args.warmup):
            one(n)
        started, cpu, all_cpu = time.perf_counter(), time.thread_time(), time.process_time()
        for n in range(args.warmup, args.warmup + args.requests):
            one(n)
        bare, cpu = time.perf_counter() - started, time.thread_time() - cpu
        all_cpu = time.process_time() - all_cpu
        each = 1000 / args.requests
        print(
            f"{args.requests} requests answered one after the other without the profiler in "
            f"{bare:.2f} s: {bare * each:.2f} ms each; CPU per request {all_cpu * each:.2f} ms "
            f"in the process (every thread), {cpu * each:.2f} ms in the answering thread"
        )
        args.warmup += args.requests
        # CPU time of this thread: time spent waiting for the writer thread's commit is not
        # counted here; the writer's own CPU is reported below.
        profile = cProfile.Profile(time.thread_time)
        started = time.perf_counter()
        profile.enable()
        for n in range(args.warmup, args.warmup + args.requests):
            one(n)
        profile.disable()
        wall = time.perf_counter() - started
        burst.__exit__(None, None, None)
        total = args.warmup + args.requests
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            cards = [c for c in slack.calls_to("chat.postMessage") if "thread_ts" not in c]
            if len(cards) >= total:
                break
            time.sleep(0.2)
        bot.stop()
        print(
            f"\n{args.requests} requests answered in {wall:.2f} s under the profiler: "
            f"{wall / args.requests * 1000:.2f} ms each (the profiler adds to this); the "
            "profile below is the answering thread's CPU time"
        )
        print(f"cards posted after the acks: {len(cards)} of {total}")
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(r"/app/", args.top)
        stats.sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
