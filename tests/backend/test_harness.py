"""The benchmark harness: t-based intervals over seeds, paired differences, goals, seeded stratified splits,
no tiny last batch, cached frozen features, and the Markdown / JSON / plot of a study."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from rs_scene.data.datasets import open_dataset
from rs_scene.engine.train import TrainParams, build_card
from rs_scene.engine.trainer import Trainer, TrainSettings, even_batches
from rs_scene.methods import create_method

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "backend" / "experiments"))
import common
from stats import Study, interval, paired

pytest_plugins = ["datasets_tiny"]


def test_interval_is_student_t() -> None:
    iv = interval([0.80, 0.84, 0.82])  # mean 0.82, sd 0.02, t(0.975, 2) = 4.303
    assert iv.mean == pytest.approx(0.82)
    assert iv.hi - iv.mean == pytest.approx(4.3027 * 0.02 / 3**0.5, rel=1e-3)
    assert interval([0.5]).lo == interval([0.5]).hi == 0.5


def test_paired_difference_uses_common_seeds_only() -> None:
    d = paired({0: 0.9, 1: 0.8, 2: 0.7}, {0: 0.8, 1: 0.7, 3: 0.1})
    assert d.n == 2 and d.mean == pytest.approx(0.1) and d.lo == pytest.approx(0.1)


def test_goals_strict_and_not_worse() -> None:
    s = Study("x", "t", "s", baseline="b")
    for seed, (a, b) in enumerate([(0.82, 0.80), (0.85, 0.80), (0.79, 0.80)]):
        s.add("a", seed, a, parameters=10)
        s.add("b", seed, b, parameters=10)
    assert not s.goal("a > b", "a", "b", strict=True).met  # interval reaches below 0
    assert s.goal("a >= b", "a", "b", strict=False).met
    md = s.markdown()
    assert "**not met**" in md and "**met**" in md and "| parameters |" in md.replace("seeds | ", "")
    json.dumps(s.to_dict())


def test_study_plot(tmp_path: Path) -> None:
    s = Study("x", "t", "s")
    for seed in range(3):
        s.add("a", seed, 0.5 + seed / 100)
    assert s.plot(tmp_path / "p.png").stat().st_size > 1000


def test_seeded_split_is_stratified_and_differs_by_seed(ucm_tiny: Path) -> None:
    data = open_dataset(ucm_tiny, size=32)
    tr0, te0 = common.seeded_split(data, 0, test=1)
    tr1, te1 = common.seeded_split(data, 1, test=1)
    assert sorted(te0.y.tolist()) == list(range(len(data.classes)))
    assert not set(tr0.files) & set(te0.files)
    assert len(tr0) + len(te0) == len(data)
    assert te0.files != te1.files or tr0.files != tr1.files


def test_widen_test_adds_images_outside_training_and_validation(tmp_path: Path) -> None:
    from datasets_tiny import SHARED, link_subset
    from exp_pskd import splits

    root = link_subset(SHARED / "aid_150px", tmp_path / "aid", ["Airport", "BareLand", "Beach"], 12)
    data = open_dataset(root, size=32)
    s = {"train": 2, "test": 2, "test_more": 3, "val": 2}
    train, val, test = splits(data, 0, s)
    first_train, first_test = common.seeded_split(data, 0, test=2, train=2)
    assert train.files == first_train.files and set(first_test.files) <= set(test.files)  # training as before
    assert sorted(test.class_counts().tolist()) == [5, 5, 5] and sorted(val.class_counts().tolist()) == [2, 2, 2]
    assert not set(test.files) & (set(train.files) | set(val.files)) and not set(train.files) & set(val.files)
    assert splits(data, 0, s)[2].files == test.files  # seeded
    everything = common.widen_test(data, 0, train, first_test, 100, avoid=val)  # capped by what is left
    assert len(everything) == len(data) - len(train) - len(val)
    assert common.widen_test(data, 0, train, first_test, 0) is first_test


def test_ddrl_am_selection_validates_on_images_outside_the_studys_training_and_test_parts(tmp_path: Path) -> None:
    from datasets_tiny import SHARED, link_subset
    from exp_ddrl_am import select_split

    root = link_subset(SHARED / "aid_150px", tmp_path / "aid", ["Airport", "BareLand", "Beach"], 24)
    data = open_dataset(root, size=32)
    s = {"train": 3, "test": 2, "test_more": 4}
    train, val, test = select_split(data, 1, s)
    study_train, first = common.seeded_split(data, 1, test=2, train=3)  # what the study's run() draws
    assert train.files == study_train.files
    assert test.files == common.widen_test(data, 1, study_train, first, 4).files
    assert sorted(val.class_counts().tolist()) == [10, 10, 10]
    assert not set(val.files) & (set(train.files) | set(test.files))


def test_no_tiny_last_batch(ucm_tiny: Path) -> None:
    sizes = [len(b) for b in even_batches(torch.arange(100), 32)]
    assert sizes == [34, 33, 33] or sorted(sizes) == [33, 33, 34]
    data = open_dataset(ucm_tiny, size=32)
    method = create_method("pretrain", {"batch_size": 5, "init": "scratch"}, num_classes=len(data.classes),
                           bands=data.bands)
    card = build_card(TrainParams(out="x.pt"), data, data, method)
    batches = Trainer(method, card, TrainSettings(device="cpu")).batches(data, 5, None)  # 12 images: 6 + 6, not 5 + 5 + 2
    assert min(len(b) for b in batches) >= 3 and sum(len(b) for b in batches) == len(data)


def test_cached_features_are_reused(ucm_tiny: Path, tmp_path: Path) -> None:
    data = open_dataset(ucm_tiny, size=64)  # Lite0 at 32 px pools a 1x1 map, nearly all 0
    method = create_method("pretrain", {}, num_classes=len(data.classes), bands=data.bands)  # ImageNet
    card = build_card(TrainParams(out="x.pt"), data, data, method)
    net = method.build_model()
    ctx = common.Ctx(tmp_path, tmp_path)
    a = common.cached_features(ctx, "k", net, card, data)
    torch.nn.init.zeros_(net.backbone._conv_stem.weight)  # a cache hit does not recompute
    b = common.cached_features(ctx, "k", net, card, data)
    assert a.shape == (len(data), net.num_features) and torch.equal(a, b)
    acc = common.linear_probe(a, data.y, a, data.y, seed=0, epochs=100)
    assert acc > 0.9  # separable on its own training features


def test_studies_from_separate_processes_join() -> None:
    parts = []
    for seed in (0, 1, 2):
        s = Study("x", "t", "s", baseline="b")
        s.add("a", seed, 0.8 + seed / 100, parameters=5)
        s.add("b", seed, 0.7)
        s.goal("a > b", "a", "b", strict=True)
        parts.append(Study.from_dict(json.loads(json.dumps(s.to_dict()))))
    joined = parts[0]
    for p in parts[1:]:
        joined.join(p)
    assert joined.summary("a").n == 3 and joined.goals[0].diff.n == 3 and joined.goals[0].met
    assert joined.extras["a"]["parameters"] == [5, 5, 5]


def test_rows_from_a_second_run_join_with_their_goal_and_the_baseline_once() -> None:
    """`run.py --methods new` beside a full run: the new row and its goal join; the baseline it reran on the
    same seeds is kept once (its first values and extras)."""
    full, extra = Study("d", "t", "s", baseline="b"), Study("d", "t", "s", baseline="b")
    for seed in (0, 1, 2):
        full.add("b", seed, 0.6, parameters=3)
        full.add("a", seed, 0.5 + seed / 100)
        extra.add("b", seed, 0.61, parameters=3)
        extra.add("c", seed, 0.6 + seed / 100)
    full.goal("a >= b", "a", "b", strict=False)
    extra.goal("c >= b", "c", "b", strict=False)
    full.join(Study.from_dict(json.loads(json.dumps(extra.to_dict()))))
    assert list(full.values) == ["b", "a", "c"] and full.values["b"] == {0: 0.6, 1: 0.6, 2: 0.6}
    assert full.extras["b"]["parameters"] == [3, 3, 3]
    assert [g.text for g in full.goals] == ["a >= b", "c >= b"] and full.goals[1].diff.n == 3


RUN = Path(__file__).resolve().parents[2] / "backend" / "experiments" / "run.py"


def test_jobs_run_each_seed_as_a_process_and_join_them(data_root: Path, tmp_path: Path) -> None:
    """`run.py --jobs 2`: one process per study seed, joined into one table with every seed; a part that
    fails fails the run and names its log."""
    import subprocess

    out = tmp_path / "e"
    cmd = [sys.executable, str(RUN), "--data", str(data_root), "--profile", "smoke", "--only", "pretrain",
           "--jobs", "2", "--out"]
    done = subprocess.run([*cmd, str(out)], check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (out / "parts").iterdir()) == ["pretrain-s0", "pretrain-s1"]
    result = json.loads((out / "results.json").read_text())
    (table,) = result["tables"]
    assert table["key"] == "pretrain"
    assert all(sorted(r["per_seed"]) == ["0", "1"] for r in table["rows"].values())
    assert "2 seeds" in result["header"] and "--jobs 2" in result["header"]
    assert (out / "plot_pretrain.png").stat().st_size > 0

    bad = subprocess.run([*cmd, str(tmp_path / "f"), "--data", str(tmp_path / "no-data")], check=False,
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 1 and "failed parts" in bad.stderr and "pretrain seed 0" in bad.stderr
    assert not (tmp_path / "f" / "results.json").exists()


def test_quick_profile_runs_five_seeds_a_method_study_and_three_for_the_defaults(tmp_path: Path) -> None:
    ctx = common.Ctx(tmp_path, tmp_path, common.PROFILES["quick"])
    assert ctx.for_study("scl").seeds == [0, 1, 2, 3, 4] and ctx.for_study("defaults").seeds == [0, 1, 2]
    given = common.Ctx(tmp_path, tmp_path, common.PROFILES["quick"], seeds_override=2)
    assert given.for_study("scl").seeds == given.for_study("defaults").seeds == [0, 1]
    listed = common.Ctx(tmp_path, tmp_path, common.PROFILES["quick"], seed_list=[3])
    assert listed.for_study("defaults").seeds == [3]
    import run

    assert run.seeds_text(ctx, ["scl", "pskd", "defaults"]) == "5 seeds (defaults: 3)"


def test_merge_writes_the_readings_again_from_the_joined_seeds(tmp_path: Path) -> None:
    """Per-seed parts each carry a one-seed reading; the merged tables' readings (DDRL-AM's, SCL's two) are
    computed again from all seeds."""
    import run

    files = []
    for seed in (0, 1, 2):
        ddrl = Study("ddrl-am", "DDRL-AM", "AID at 96 px", baseline="backbone")
        for label, v in (("backbone", 0.60), ("+map", 0.61), ("+map+center", 0.62)):
            ddrl.add(label, seed, v + seed / 100)
        overall = Study("scl-s10", "SCL", "", baseline="CE")
        minor = Study("scl-s10-minority", "SCL minority", "", baseline="CE")
        for label, v in (("CE", 0.5), ("SCL-CB", 0.55), ("ImageNet encoder + CB", 0.4)):
            overall.add(label, seed, v + seed / 50)
            minor.add(label, seed, v - 0.1)
        for st in (ddrl, overall, minor):
            st.reading = "one seed's reading"
        f = tmp_path / f"s{seed}.json"
        f.write_text(json.dumps({"seconds": 1, "header": "# h\n",
                                 "tables": [s.to_dict() for s in (ddrl, overall, minor)]}))
        files.append(str(f))
    assert run.merge(files, tmp_path / "m") == 0
    tables = {t["key"]: t for t in json.loads((tmp_path / "m" / "results.json").read_text())["tables"]}
    assert "paired over 3 seeds" in tables["ddrl-am"]["reading"] and "3 x 3 cells" in tables["ddrl-am"]["reading"]
    for key in ("scl-s10", "scl-s10-minority"):
        assert tables[key]["reading"].startswith("SCL-CB minus CE: overall +5.0")
        assert "minority +5.0" in tables[key]["reading"]


def test_a_standalone_study_script_runs_with_jobs(tmp_path: Path) -> None:
    """`python exp_x.py --jobs 2` (run.standalone): each seed's process knows the script's study too."""
    import os
    import subprocess

    (tmp_path / "toy_study.py").write_text(
        "from stats import Study\n\n"
        "def run(ctx):\n"
        "    st = Study('toy', 'Toy', 'a toy study', baseline='a')\n"
        "    for seed in ctx.seeds:\n"
        "        st.add('a', seed, 0.5)\n"
        "        st.add('b', seed, 0.5 + seed / 10)\n"
        "    return st\n")
    script = tmp_path / "exp_toy.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(RUN.parent)!r})\nimport run\n"
                      "sys.exit(run.standalone('toy', 'toy_study'))\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(script), "--data", str(tmp_path), "--out", str(out),
                           "--seed-list", "2,3", "--jobs", "2"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    (table,) = json.loads((out / "results.json").read_text())["tables"]
    assert table["key"] == "toy" and sorted(table["rows"]["b"]["per_seed"]) == ["2", "3"]


def test_defaults_study_tests_on_no_image_a_selection_was_validated_on() -> None:
    from datasets_tiny import SHARED
    from exp_ddrl_am import select_split, setup
    from exp_defaults import unselected
    from exp_pretrain_bn import aid_validation
    from exp_pskd import settings, splits

    # AID's file list in load_folder's order, without decoding its 6,000 JPEGs (only names and labels count)
    dirs = sorted(p for p in (SHARED / "aid_150px").iterdir() if p.is_dir())
    files = [(k, f"{d.name}/{f.name}") for k, d in enumerate(dirs) for f in sorted(d.iterdir())
             if f.suffix.lower() == ".jpg"]
    data = common.SceneData(torch.zeros(len(files), 1, 1, 1), torch.tensor([k for k, _ in files]),
                            [d.name for d in dirs], ["red"], [f for _, f in files], 255.0, 1.0)
    quick = common.Ctx(Path("."), Path("."), common.PROFILES["quick"])
    validated = (set(select_split(data, 2, setup(quick))[1].files) | set(splits(data, 3, settings(quick))[1].files)
                 | set(aid_validation(data, 0)[1].files))
    assert len(validated) > 500
    pool = unselected(data)
    assert not set(pool.files) & validated
    train, test = common.seeded_split(pool, 2, test=100, train=3)
    assert set(test.class_counts().tolist()) == {100} and set(train.class_counts().tolist()) == {3}


def test_pskd_study_trains_with_pskds_default_optimizer_and_the_sgd_selections_keep_sgd() -> None:
    import exp_pskd
    import exp_pskd_adam
    import exp_pskd_bn
    import exp_pskd_bnmix
    from rs_scene.methods.registry import get_method

    # the study shows what a user of pskd's defaults trains with; the selections run with SGD stay SGD, so a
    # rerun of them reproduces what they chose
    assert exp_pskd.STUDENT["optimizer"] == get_method("pskd").Config().optimizer == "adam"
    assert exp_pskd_bn.STUDENT["optimizer"] == exp_pskd_bnmix.STUDENT["optimizer"] == "sgd"
    assert exp_pskd_adam.SGD_STUDENT["optimizer"] == "sgd"  # overridden per cell with adam
    assert set(exp_pskd.CELL) == set(exp_pskd.ROWS) and all(c["lr"] in exp_pskd_adam.LRS
                                                           for c in exp_pskd.CELL.values())


def test_a_teacher_trained_at_a_larger_input_teaches_a_student_at_the_images_size(
        ucm_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import exp_pskd_teacher

    # exp_pskd_teacher / exp_pskd_strong: the teacher sees the images enlarged (`train --input-size`), the
    # student keeps their size and feeds the teacher its own batch, enlarged by the TeacherAdapter
    data = open_dataset(ucm_tiny, size=32)
    ctx = common.Ctx(tmp_path, tmp_path)
    short = {"init": "scratch", "epochs": 1, "min_steps": 0, "batch_size": 6}
    teacher = common.train_eval(ctx, "pretrain", short, data, data, 0, input_size=64)
    assert teacher.card.input_size == 64
    student = common.train_eval(ctx, "pskd", {**short, "kd": "hinton",
                                              "teacher": str(common.save(teacher, tmp_path / "t.pt"))},
                                data, data, 0)
    assert student.card.input_size == 32 and student.model.teacher.size == 64
    assert exp_pskd_teacher.TEACHERS["input 96 px"][1] == 96
    monkeypatch.setenv("RS_PSKD_TEACHERS", "input 96 px, min_steps 600")
    assert exp_pskd_teacher.selected() == ["input 96 px", "min_steps 600"]
    monkeypatch.setenv("RS_PSKD_TEACHERS", "input 97 px")
    with pytest.raises(SystemExit, match="unknown teacher.*input 97 px"):
        exp_pskd_teacher.selected()
