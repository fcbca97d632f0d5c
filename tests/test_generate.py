"""`consolidate generate`: a valid scenario with the asked population and profile mix."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

import consolidate
from consolidate.cli import app


def test_generate_writes_a_runnable_population(tmp_path):
    f = tmp_path / "g.yaml"
    res = CliRunner().invoke(app, ["generate", "--vms", "200", "--hosts", "20", "--profile-mix", "web=3,batch=1",
                                   "--duration-s", "3600", "--out", str(f)])
    assert res.exit_code == 0, res.stderr
    sc = consolidate.load_scenario(f)
    assert sum(g.count for g in sc.vms) == 200 and sum(h.count for h in sc.hosts) == 20
    assert {g.profile: g.count for g in sc.vms} == {"web": 150, "batch": 50}
    s = consolidate.run(sc).summary.iloc[0]
    assert s.vms == 200 and s.overhead_pct_mean > 0


@pytest.mark.parametrize("mix,message", [("web=1,ftp=1", "unknown profile (got 'ftp'"),
                                         ("web=x", "share is not a number (got 'x')"),
                                         ("web=0", "no profile with a positive share")])
def test_generate_rejects_a_bad_mix(tmp_path, mix, message):
    res = CliRunner().invoke(app, ["generate", "--vms", "10", "--hosts", "1", "--profile-mix", mix,
                                   "--out", str(tmp_path / "g.yaml")])
    assert res.exit_code == 2 and message in res.stderr
