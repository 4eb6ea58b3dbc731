"""The study cannot be gamed (issue 26): vote pace per session, bounded trials, and pairs
that cannot be told apart by size, type, headers or timing."""

from __future__ import annotations

import random
import time

import pytest

from conftest import make_photo
from tinct.serve import study_web
from tinct.serve.study import TooFast, VoteLimits, VoteStore, wilson_interval


@pytest.fixture
def study_dir(tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    for i, (w, h) in enumerate([(120, 80), (96, 96), (80, 120)]):
        make_photo(w, h, seed=20 + i).save(folder / f"p{i}.jpg", quality=90)
    return folder


def test_one_session_cannot_vote_300_times_in_2_s(make_client, study_dir):
    client = make_client(study_data=study_dir)
    session, accepted, paced = "a" * 32, 0, 0
    deadline = time.monotonic() + 2.0
    for _ in range(300):
        if time.monotonic() > deadline:
            break
        trial = client.get("/api/study/next", params={"session": session}).json()["trial"]
        r = client.post("/api/study/vote", json={"trial": trial, "choice": 0, "response_ms": 900})
        if r.status_code == 200:
            accepted += 1
        else:
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1, r.text
            paced += 1
    assert accepted <= 3 and paced > 0  # one vote a second (the default vote_interval)
    assert client.app.state.tinct.store.session_votes(session) == accepted


def test_hourly_vote_cap(tmp_path):
    store = VoteStore(tmp_path / "v.sqlite", VoteLimits(interval=0, per_hour=5))
    trials = [store.new_trial("s" * 32, f"p{i}", "p.jpg", "m", 0) for i in range(6)]
    for trial in trials[:5]:
        store.vote(trial, 0, 10)
    with pytest.raises(TooFast, match="5 votes an hour") as e:
        store.vote(trials[5], 0, 10)
    assert 3590 <= e.value.retry_after <= 3601
    store.vote(store.new_trial("t" * 32, "p", "p.jpg", "m", 0), 0, 10)  # another session is not affected
    store.close()


def test_trials_do_not_accumulate(make_client, study_dir):
    client = make_client(study_data=study_dir, max_open_trials=10)
    store = client.app.state.tinct.store
    first = client.get("/api/study/next", params={"session": "b" * 32}).json()
    for _ in range(30):  # reloading the page gives the same trial back, with the same images
        assert client.get("/api/study/next", params={"session": "b" * 32}).json()["trial"] == first["trial"]
    assert store.open_trials() == 1
    for _ in range(50):  # sessions minted freely: the oldest unvoted trials go beyond max_open_trials
        client.get("/api/study/next")
    assert store.open_trials() == 10


def test_unvoted_trials_expire(tmp_path):
    store = VoteStore(tmp_path / "v.sqlite", VoteLimits(interval=0, trial_ttl=0.2))
    old = store.new_trial("s" * 32, "p", "p.jpg", "m", 0)
    voted = store.new_trial("u" * 32, "p", "p.jpg", "m", 0)
    store.vote(voted, 1, 10)
    time.sleep(0.3)
    assert store.trial(old) is None and store.open_trial("s" * 32) is None
    with pytest.raises(KeyError):
        store.vote(old, 0, 10)
    store.new_trial("t" * 32, "p", "p.jpg", "m", 0)  # deletes the expired ones
    assert store._run("SELECT COUNT(*) FROM trials WHERE id = ?", (old,))[0][0] == 0
    assert store.trial(voted) is not None and len(store.votes()) == 1  # votes and their trials stay
    store.close()


def _timed_get(client, url):
    t = time.perf_counter()
    r = client.get(url)
    return r, time.perf_counter() - t


def test_a_guesser_by_size_type_or_timing_scores_chance(make_client, study_dir, monkeypatch):
    """200 trials; per trial the guesser fetches both images and calls "colorized" the one
    with the smaller Content-Length, else a different type or headers, else the slower one
    (when more than 2 ms slower), else slot 0. The old study (PNGs as compressed) was
    guessed 21 of 24 times by Content-Length alone."""
    monkeypatch.setattr(study_web, "_rng", random.Random(26))  # the slot draws, reproducible
    client = make_client(study_data=study_dir)
    store = client.app.state.tinct.store
    right, unequal, n = 0, 0, 200
    for i in range(n):
        data = client.get("/api/study/next", params={"session": f"{i:032x}"}).json()
        (a, ta), (b, tb) = (_timed_get(client, url) for url in data["images"])
        assert a.status_code == b.status_code == 200
        la, lb = int(a.headers["content-length"]), int(b.headers["content-length"])
        ha = {k: v for k, v in a.headers.items() if k != "date"}
        hb = {k: v for k, v in b.headers.items() if k != "date"}
        if la != lb:
            guess = 0 if la < lb else 1
        elif ha != hb:
            guess = 0 if str(sorted(ha.items())) < str(sorted(hb.items())) else 1
        elif abs(ta - tb) > 0.002:
            guess = 0 if ta > tb else 1
        else:
            guess = 0
        right += guess == store.trial(data["trial"])["colorized_slot"]
        unequal += la != lb or ha != hb
    low, high = wilson_interval(right, n)
    assert low <= 0.5 <= high, f"guessed {right} of {n}"
    assert unequal == 0 and a.headers["content-type"] == "image/png"
