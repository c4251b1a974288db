"""History's "contains" filter through the trigram index (schema.FTS_MIGRATION) on real SQLite
files: the same runs, in the same order, with the same counts, as the LIKE scan it replaces,
for short needles, quotes, % and _, backslashes, FTS5 syntax and non-ASCII text; and the
index follows inserts, error updates, deletes, other processes' writes and old registries.
"""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from prismq_desktop.core.models import Outcome, OutcomeKind, RunSpec, RunStatus, transition
from prismq_desktop.core.store import RunQuery
from prismq_desktop.core.store.registry import RunRegistry
from prismq_desktop.core.store.schema import FTS_MIGRATION, MIGRATIONS, RunKeyTaken, has_trigram_index, statements

NAMES = [
    "train.py", "Train_Model.py", "TRAIN-all", "étude.py", "Étude.py", "straße", "STRASSE", "\u212aelvin",
    "kelvin", "naïve café", 'say "hi"', "it's", "100%_done", "100x done", "a_b", "aXb", "back\\slash",
    "emoji 🚀 launch", "NEAR(a b)", "a OR b", "col:umn", "star*", "^caret", "日本語のジョブ", "x", "xy", " ",
    "ǅungla", "ǆungla", "İstanbul", "istanbul",
]
ERRORS = [None, "Boom: division by zero", "exit 'quoted' code", 'he said "stop"', "50% of 100_000", "ÉCHEC"]
TRIGGERS = [None, "cron: 0 2 * * *", "every 5m", "Catch-up: 3 missed", "manual"]
KEYS = [None, "job_1", "Job.2", "deploy:prod", "A-b_C"]

NEEDLES = [
    "", "t", "T", "tr", "TR", "tra", "TRAIN", "rain_", "_", "__", "%", "%_", "_d", "0%", "100%", "100%_", "\\",
    "k\\s", '"', '""', 'y "h', "'", "t's", "é", "É", "étu", "ÉTU", "Étude", "ss", "ß", "straß", "STRASSE",
    "\u212a", "\u212ael", "kel", "KEL", "ïve", "IVE", "naï", "🚀", "🚀 l", "near(", "NEAR(a", "a or", "OR b",
    "col:", ":um", "*", "star*", "r*", "^", "^ca", "日本", "日本語", "のジョブ", "x", "xy", "xyz", " ", "  ", "a b",
    "ǅ", "ǆun", "ǅUN", "i̇", "İst", "ist", "boom", "BOOM: d", "quoted", "stop\"", "of 100_", "échec", "ÉCHEC",
    "cron", "0 2 *", "5m", "catch-UP", "job_", "JOB_1", "b.2", "deploy:p", "-b_c", "zzz-no-such", "a%b", "a_b",
]


def make_runs(reg: RunRegistry, n: int) -> list[int]:
    """Runs with every name, error, trigger and key combined, stored the way the engine stores them."""
    combos = list(itertools.product(NAMES, ERRORS, TRIGGERS))
    keys = iter(KEYS[1:])
    runs = []
    for i in range(n):
        name, error, trigger = combos[(i * 7) % len(combos)]
        key = next(keys, None) if i % 11 == 3 else None
        runs.append(reg.new_run(RunSpec("/w/job.py", name=name), trigger=trigger, key=key, created_at=1000.0 + i // 3))
    reg.insert(runs)
    for i, run in enumerate(runs):
        error = combos[(i * 7) % len(combos)][1]
        running = transition(run, RunStatus.RUNNING, started_at=run.created_at + 1)
        outcome = Outcome(OutcomeKind.FAILED, 1, error) if error else Outcome(OutcomeKind.SUCCEEDED, 0)
        reg.save(transition(running, RunStatus.DONE, outcome, ended_at=run.created_at + 2))
    return [r.id for r in runs]


def like_scan(path: Path, query: RunQuery) -> tuple[list[int], int]:
    """The answer of the plain LIKE scan (no index), on a connection of its own."""
    con = sqlite3.connect(str(path))
    try:
        where, params = query.where(fts=False)
        ids = [r[0] for r in con.execute(f"SELECT id FROM runs{where}{query.order_by()} LIMIT ? OFFSET ?",
                                         (*params, query.limit, query.offset))]
        count = con.execute(f"SELECT COUNT(*) FROM runs{where}", params).fetchone()[0]
        return ids, count
    finally:
        con.close()


def assert_same_answers(reg: RunRegistry, path: Path, needles: list[str], **extra: object) -> int:
    """Every needle: same ids page by page and the same count as the LIKE scan; how many matched in all."""
    matched = 0
    for needle in needles:
        for sort, desc in (("created", True), ("name", False)):
            for offset in (0, 7):
                query = RunQuery(text=needle or None, sort=sort, descending=desc, limit=15, offset=offset, **extra)  # type: ignore[arg-type]
                ids, count = like_scan(path, query)
                got = [r.id for r in reg.query(query)]
                assert got == ids, (needle, sort, offset)
                assert reg.count(query) == count, needle
                # History passes the count it just made (it picks how the page is read): same page
                assert [r.id for r in reg.query(query, matches=count)] == ids, (needle, sort, offset)
                # History's first count stops at a cap: exact under it, None (and the same page) at or over it
                assert reg.count_up_to(query, count + 1) == count, (needle, sort)
                for cap in (1, max(count, 1)):
                    up = reg.count_up_to(query, cap)
                    assert up == count or (up is None and count >= cap), (needle, cap, up, count)
                    if up is None:
                        assert [r.id for r in reg.query(query, matches=cap)] == ids, (needle, sort, offset)
                matched += count if offset == 0 and sort == "created" else 0
    return matched


@pytest.fixture
def db(home: Path) -> Path:
    return home / "registry.sqlite3"


def test_this_sqlite_has_trigram_and_the_registry_builds_the_index(db: Path) -> None:
    with RunRegistry(db) as reg:
        assert has_trigram_index(reg._db), "SQLite without FTS5 trigram: the History filter stays a LIKE scan"
        assert reg.schema_version == len(MIGRATIONS) and MIGRATIONS[-1] is FTS_MIGRATION


@pytest.mark.parametrize("common", [4000, 1])
def test_filter_gives_the_same_runs_and_counts_as_a_like_scan(db: Path, common: int,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # common=1 pages every text from the index; 4000 (the default) pages them with a scan in sort order
    monkeypatch.setattr(RunRegistry, "COMMON_MATCHES", common)
    with RunRegistry(db) as reg:
        make_runs(reg, 600)
        assert pending(db) == 600  # every run only noted so far: answered by LIKE on the noted rows
        assert_same_answers(reg, db, NEEDLES[::5])
        assert reg.index_pending(250) == 350 and reg.index_pending() == 0  # in batches, then all
        matched = assert_same_answers(reg, db, NEEDLES)
        assert matched > 600  # the needles do match: not a comparison of two empty answers
        # with the other filters too (the index answers the text, SQL the rest)
        assert_same_answers(reg, db, NEEDLES[::3], states=("failed",))
        assert_same_answers(reg, db, NEEDLES[::4], states=("succeeded", "queued"), since=1050.0, until=1150.0)


def test_every_substring_of_the_stored_values_finds_exactly_the_like_rows(db: Path) -> None:
    with RunRegistry(db) as reg:
        make_runs(reg, 200)
        values = {v for v in NAMES + ERRORS + TRIGGERS + KEYS if v}
        subs = sorted({v[i:i + n] for v in values for n in (1, 2, 3, 4, 6) for i in range(0, len(v), 3)})
        assert len(subs) > 300
        for needle in subs:
            query = RunQuery(text=needle, limit=10_000)
            ids, count = like_scan(db, query)
            assert count > 0 or needle.strip() == "", needle
            assert [r.id for r in reg.query(query)] == ids and reg.count(query) == count, needle


def test_the_index_follows_errors_deletes_and_other_processes(db: Path) -> None:
    with RunRegistry(db) as reg:
        ids = make_runs(reg, 120)
        run = reg.get(ids[0])
        assert run is not None
        # a new error text replaces the old one in the index (the engine re-saves a run's outcome)
        reg.save(replace(run, outcome=Outcome(OutcomeKind.FAILED, 3, "brand new failure ÜBER")))
        assert [r.id for r in reg.query(RunQuery(text="new fail"))] == [ids[0]]
        assert reg.count(RunQuery(text="new FAILURE ÜBER")) == 1  # ASCII letters fold, like LIKE ...
        assert reg.count(RunQuery(text="failure über")) == 0  # ... Ü and ü do not (LIKE neither)
        assert_same_answers(reg, db, ["new fail", "über", "ÜBER", "boom"])
        # deleted runs leave the index (retention, History's delete)
        before = reg.count(RunQuery(text="train"))
        gone = [r.id for r in reg.query(RunQuery(text="train", limit=5))]
        assert reg.delete(gone) == 5
        assert reg.count(RunQuery(text="train")) == before - 5
        assert_same_answers(reg, db, ["train", "TRAIN", "rain_"])
        # another process inserts and finishes runs on the same file: the triggers index them too
        code = (
            "import sys\nfrom prismq_desktop.core.store.registry import RunRegistry\n"
            "from prismq_desktop.core.models import RunSpec\n"
            "with RunRegistry(sys.argv[1]) as reg:\n"
            "    reg.insert([reg.new_run(RunSpec('/w/x.py', name='Other Process Job %d' % i)) for i in range(3)])\n"
        )
        subprocess.run([sys.executable, "-c", code, str(db)], check=True, timeout=60)
        assert reg.count(RunQuery(text="process job")) == 3
        assert_same_answers(reg, db, ["process job", "other", "job 2"])


def test_an_old_registry_gets_its_runs_indexed_and_a_status_save_leaves_the_index_alone(db: Path) -> None:
    con = sqlite3.connect(str(db))
    for i, migration in enumerate(MIGRATIONS[:-1]):
        con.executescript(migration)
        con.execute(f"PRAGMA user_version={i + 1}")
    con.execute("INSERT INTO runs (name, spec, status, created_at, error) VALUES "
                "('Legacy Nightly.py', '{\"target\": \"l.py\", \"args\": [], \"kind\": \"script\"}', 'done', 1.0, "
                "'disk FULL')")
    con.commit()
    con.close()
    with RunRegistry(db) as reg:
        assert has_trigram_index(reg._db)
        assert reg.count(RunQuery(text="legacy night")) == 1 and reg.count(RunQuery(text="disk full")) == 1
        assert reg.count(RunQuery(text="nightly", states=("done",))) == 1
        assert_same_answers(reg, db, ["legacy", "full", "ly N", "nightly"])
        (new,) = reg.query(RunQuery(text="train", limit=1)) if make_runs(reg, 40) else ()
        changes = reg._db.total_changes
        reg.save(new.with_changes(priority=0))  # an update that leaves name/trigger/error/run_key alone
        assert reg._db.total_changes - changes == 1  # only the row: the update trigger did not fire
        reg.save(replace(new, outcome=Outcome(OutcomeKind.FAILED, 9, "other")))
        assert reg._db.total_changes - changes > 2  # this one did


def test_without_the_index_the_filter_is_the_like_scan(db: Path) -> None:
    """An SQLite without trigrams skips the migration: the same answers from the LIKE scan."""
    with RunRegistry(db) as reg:
        make_runs(reg, 150)
    con = sqlite3.connect(str(db))
    con.executescript("DROP TRIGGER runs_fts_update; DROP TRIGGER runs_fts_delete; "
                      "DROP TABLE runs_fts;")
    con.close()
    with RunRegistry(db) as reg:
        assert not reg._fts
        assert_same_answers(reg, db, NEEDLES[::2])


def test_statements_keep_a_trigger_body_whole() -> None:
    parts = statements(FTS_MIGRATION)
    assert len(parts) == 7 and parts[5].startswith("CREATE TRIGGER") and parts[5].rstrip().endswith("END;")
    assert statements("CREATE TABLE a(x); ; CREATE INDEX i ON a(x)") == ["CREATE TABLE a(x);", "CREATE INDEX i ON a(x);"]


def test_the_total_of_runs_is_kept_without_a_scan_and_equals_count_star(db: Path) -> None:
    def star() -> int:
        con = sqlite3.connect(str(db))
        try:
            return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
        finally:
            con.close()

    with RunRegistry(db) as reg:
        ids = make_runs(reg, 90)
        assert reg.count() == star() == 90
        assert reg.delete(ids[:7]) == 7 and reg.count() == star() == 83
        code = ("import sys\nfrom prismq_desktop.core.store.registry import RunRegistry\n"
                "from prismq_desktop.core.models import RunSpec\nwith RunRegistry(sys.argv[1]) as reg:\n"
                "    reg.insert([reg.new_run(RunSpec('/w/y.py')) for _ in range(5)])\n")
        subprocess.run([sys.executable, "-c", code, str(db)], check=True, timeout=60)
        assert reg.count() == star() == 88
        # a failed insert (a taken run key) stores nothing and counts nothing
        with pytest.raises(RunKeyTaken):
            reg.insert([reg.new_run(RunSpec("/w/z.py"), key="Job.2")])  # run 14's, still there
        assert reg.count() == star() == 88
        con = sqlite3.connect(str(db))
        assert con.execute("SELECT n FROM runs_total").fetchone()[0] == 88  # read from the table, not a scan
        con.close()


def pending(path: Path) -> int:
    con = sqlite3.connect(str(path))
    try:
        return int(con.execute("SELECT COUNT(*) FROM runs_fts_pending").fetchone()[0])
    finally:
        con.close()


def test_new_and_renamed_runs_wait_in_pending_until_a_filtered_read_indexes_them(db: Path) -> None:
    with RunRegistry(db) as reg:
        ids = make_runs(reg, 60)
        assert pending(db) == 60  # the inserts only noted them: no trigram work on the engine's path
        assert_same_answers(reg, db, ["train", "boom", "job_"])
        assert pending(db) == 60 and reg.index_pending() == 0 == pending(db)  # reads never write
        # changed while pending, deleted while pending, changed once indexed: all exact
        fresh = [reg.new_run(RunSpec("/w/p.py", name=f"Pending Name {i}")) for i in range(4)]
        reg.insert(fresh)
        reg.save(replace(fresh[0], outcome=Outcome(OutcomeKind.FAILED, 2, "pending then failed")))
        assert reg.delete([fresh[1].id]) == 1
        indexed = reg.get(ids[5])
        assert indexed is not None
        reg.save(replace(indexed, outcome=Outcome(OutcomeKind.FAILED, 2, "indexed then failed")))
        assert pending(db) == 4  # fresh[0], [2], [3] and the re-noted ids[5]; the deleted one left
        for step in range(2):  # noted, then indexed: the same answers
            assert reg.count(RunQuery(text="pending name")) == 3
            assert reg.count(RunQuery(text="then failed")) == 2
            assert_same_answers(reg, db, ["pending", "then failed", "indexed", "name 1", "boom"])
            assert reg.index_pending() == 0 and step in (0, 1)


def test_a_filtered_read_while_another_process_holds_the_write_lock_is_still_exact(db: Path) -> None:
    """Reads never write: with another process holding the write lock they answer exactly (the
    noted runs by LIKE); indexing them waits for a free lock instead of blocking on it."""
    with RunRegistry(db, busy_timeout=5.0) as reg:
        make_runs(reg, 80)
        assert reg.index_pending() == 0
        reg.insert([reg.new_run(RunSpec("/w/q.py", name=f"Locked Out {i}")) for i in range(3)])
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sqlite3, sys, time\n"
             "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
             "con.execute('BEGIN IMMEDIATE')\nprint('held', flush=True)\nsys.stdin.readline()\n"
             "con.execute('ROLLBACK')\n", str(db)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            assert reg.count(RunQuery(text="locked out")) == 3
            assert [r.name for r in reg.query(RunQuery(text="LOCKED OUT 1"))] == ["Locked Out 1"]
            assert_same_answers(reg, db, ["locked", "train", "job_"])
            assert reg.index_pending() == 3  # it could not index them while the lock was held ...
        finally:
            assert holder.stdin is not None
            holder.stdin.write("\n")
            holder.stdin.close()
            holder.wait(timeout=30)
        assert reg.index_pending() == 0 and reg.count(RunQuery(text="locked out")) == 3  # ... and can now
