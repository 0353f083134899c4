"""Where `emissions run` keeps its data: the project's .data/ unless Postgres's user cannot
reach it (root in a clone under /root), then a per-project directory that user can reach."""

from __future__ import annotations

import os
import pwd
import tempfile
from pathlib import Path

from cli.localservers import SHARED_DATA_ROOT, default_data_dir, reachable_by, server_user
from cli.run import ROOT, data_dir

ME = _UID, _GID = os.getuid(), os.getgid()


def _user(uid: int, gid: int) -> pwd.struct_passwd:
    return pwd.struct_passwd(("pg", "x", uid, gid, "", "/", "/bin/false"))


def _clone(parent: Path, mode: int) -> Path:
    clone = parent / "emissions-engine"
    clone.mkdir(parents=True)
    parent.chmod(mode)
    return clone


def test_when_postgres_runs_as_us_the_data_stays_in_the_project(tmp_path: Path) -> None:
    clone = _clone(tmp_path / "private", 0o700)
    assert default_data_dir(clone, None) == clone / ".data"


def test_a_project_the_server_user_reaches_keeps_its_data_in_dot_data(tmp_path: Path) -> None:
    clone = _clone(tmp_path / "open", 0o755)
    assert default_data_dir(clone, _user(*ME)) == clone / ".data"


def test_an_unreachable_project_gets_its_own_directory_under_var_lib(tmp_path: Path) -> None:
    # Mode 000: not even the owner may traverse it, as the postgres user may not traverse /root.
    first, second = _clone(tmp_path / "a", 0o000), _clone(tmp_path / "b", 0o000)
    try:
        chosen = default_data_dir(first, _user(*ME))
        assert chosen.parent == SHARED_DATA_ROOT
        assert chosen.name.startswith("emissions-engine-")
        assert default_data_dir(first, _user(*ME)) == chosen  # the same one every run
        assert default_data_dir(second, _user(*ME)) != chosen  # two clones never share one
    finally:
        for parent in (tmp_path / "a", tmp_path / "b"):
            parent.chmod(0o755)


def test_reachability_reads_the_owner_group_or_other_execute_bit() -> None:
    owner, member, stranger = _user(*ME), _user(_UID + 1, _GID), _user(_UID + 1, _GID + 1)
    # Under /tmp, not pytest's private temp dirs: every parent above is open to everyone.
    with tempfile.TemporaryDirectory(dir="/tmp") as top:
        Path(top).chmod(0o755)
        gate = Path(top) / "gate"
        gate.mkdir()
        try:
            for mode, user, expected in [
                (0o100, owner, True),
                (0o011, owner, False),  # the owner is judged by the owner bits alone
                (0o010, member, True),
                (0o101, member, False),
                (0o001, stranger, True),
                (0o770, stranger, False),
            ]:
                gate.chmod(mode)
                assert reachable_by(gate / "data", user) is expected, (oct(mode), user.pw_uid)
        finally:
            gate.chmod(0o755)


def test_run_data_dir_overrides_the_choice(tmp_path: Path) -> None:
    assert data_dir({"RUN_DATA_DIR": str(tmp_path / "x")}) == tmp_path / "x"
    assert data_dir({}) == default_data_dir(ROOT, server_user())
