"""Acks first: work that can wait (a new request's card and DM, a Home tab refresh) waits until
no Slack request has been answered for QUIET_GAP_SECONDS, for QUIET_WAIT_SECONDS at most; work
someone is waiting on (a modal, a grant, an end of access) starts at once; a graceful stop does
what is queued."""

from __future__ import annotations

import threading
import time

from app.slack.after_ack import AfterAck
from tests.conftest import eventually


def test_work_that_can_wait_starts_once_the_answer_is_out() -> None:
    later = AfterAck(threads=2)
    done = threading.Event()
    try:
        with later.answering():
            later.when_quiet(done.set)
            assert not done.wait(0.3)  # a request is still being answered
        assert done.wait(2)
    finally:
        later.shutdown()


def test_it_waits_for_every_answer_in_progress() -> None:
    later = AfterAck(threads=2)
    done = threading.Event()
    first, second = later.answering(), later.answering()
    try:
        first.__enter__()
        second.__enter__()
        later.when_quiet(done.set)
        first.__exit__(None, None, None)
        assert not done.wait(0.3)  # the second answer is not out yet
        second.__exit__(None, None, None)
        assert done.wait(2)
    finally:
        later.shutdown()


def test_work_someone_waits_on_starts_at_once_while_answers_are_in_progress() -> None:
    later = AfterAck(threads=2)
    done = threading.Event()
    try:
        with later.answering():
            later(done.set)
            assert done.wait(2)
    finally:
        later.shutdown()


def test_under_endless_requests_waiting_work_still_starts_after_the_quiet_wait() -> None:
    later = AfterAck(threads=1, quiet_wait=0.5)
    done = threading.Event()
    try:
        with later.answering():  # requests never stop
            later.when_quiet(done.set)
            assert not done.wait(0.3)  # within the quiet wait it still waits
            assert done.wait(5)  # then it starts although answers are still in progress
    finally:
        later.shutdown()


def test_a_graceful_stop_does_the_waiting_work_without_waiting_for_quiet() -> None:
    later = AfterAck(threads=1, quiet_wait=3600)
    done = threading.Event()
    answering = later.answering()
    answering.__enter__()  # an answer still in progress when the stop comes
    later.when_quiet(done.set)
    stopping = threading.Thread(target=later.shutdown, daemon=True)
    stopping.start()
    stopping.join(timeout=30)  # waiting for quiet would take the hour
    assert not stopping.is_alive() and done.is_set()
    answering.__exit__(None, None, None)


def test_a_burst_whose_requests_follow_each_other_closely_holds_the_work_to_its_end() -> None:
    # Under a burst no request may be in progress for an instant between one answer and the
    # next request: that instant is not a pause, and the card work waits for a real one.
    later = AfterAck(threads=1, gap=0.3)
    started: list[float] = []
    last_answer = 0.0
    try:
        with later.answering():
            later.when_quiet(lambda: started.append(time.monotonic()))
        for _ in range(20):  # the count touches zero between these, for ~10 ms each time
            time.sleep(0.01)
            with later.answering():
                pass
            last_answer = time.monotonic()
        assert eventually(lambda: started, what="the work to start once the burst was over")
        assert started[0] >= last_answer  # not inside the burst
    finally:
        later.shutdown()
