"""StudySpec: profiles deep-merge, one-line errors naming the field and file, the kind registry, expand."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from pydantic import BaseModel, ConfigDict

from fairmed.errors import SpecError
from fairmed.studies import classification
from fairmed.studies.kinds import KINDS, RunSpec, StudyKind, get_kind, grid_runs, register_kind
from fairmed.studies.spec import PROFILES, builtin_names, deep_merge, load_spec, resolve_spec


def _write(tmp_path, body: dict, name="study.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body))
    return path


def test_profile_deep_merge_and_defaults(tmp_path):
    path = _write(
        tmp_path,
        {
            "source": {"kind": "synth", "config": {"n": 500, "size": 16}},
            "train": {"epochs": 5, "lr": 0.01},
            "profiles": {"smoke": {"source": {"config": {"n": 50}}, "train": {"epochs": 1}}},
        },
    )
    spec = load_spec(path, profile="smoke")
    assert spec.name == "study" and spec.profile == "smoke" and spec.kind == "classification"
    assert spec.source == {"kind": "synth", "config": {"n": 50, "size": 16}}
    assert spec.train == {"epochs": 1, "lr": 0.01}
    assert spec.design.seed_list() == [0] and spec.audit.splits == ["test"]
    assert load_spec(path).source["config"]["n"] == 500  # default profile cpu: no overrides
    assert deep_merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"trian": {"epochs": 1}}, "study.yaml: unknown field 'trian' (study kind 'classification'"),
        ({"design": {"seeds": "x"}}, "study.yaml: design.seeds: Input should be a valid list"),
        ({"design": {"fractions": {"train": 0.5, "test": 0.5}}}, "study.yaml: design.fractions: needs train"),
        ({"audit": {"bootstap": 10}}, "study.yaml: audit.bootstap: Extra inputs are not permitted"),
        ({"profile": "huge"}, "study.yaml: profile: expected one of smoke, cpu, paper, got 'huge'"),
        ({"profiles": {"fast": {}}}, "study.yaml: profiles: unknown profile(s) ['fast']"),
        ({"kind": "nope"}, "study.yaml: kind: unknown study kind 'nope'"),
        (
            {"source": {"kind": "synth", "n": 3}},
            "study.yaml: source (synth) n: Extra inputs are not permitted",
        ),
        ({"strategies": ["erm", "erm"]}, "study.yaml: strategies: method 'erm' appears twice"),
        ({"train": {"epochs": 0}}, "study.yaml: train.epochs: Input should be greater than or equal to 1"),
        ({"train": {"optimizer": "rmsprop"}}, "study.yaml: train.optimizer: Input should be 'adam' or 'sgd'"),
        ({"train": {"epocs": 3}}, "study.yaml: train.epocs: Extra inputs are not permitted"),
        (
            {"model": {"arch": "foo"}},
            "study.yaml: model.arch: 'foo' is not a known architecture: small_cnn, resnet18",
        ),
        ({"model": "foo"}, "study.yaml: model.arch: 'foo' is not a known architecture"),
        (
            {"model": {"arch": "mlp", "frozen": True}},
            "study.yaml: model: 'frozen' applies to image backbones",
        ),
        (
            {"strategies": ["erm", "nope"]},
            "study.yaml: strategies[1].name: Input should be 'erm', 'reweight'",
        ),
        (
            {"strategies": [{"name": "adversarial", "adv_lamda": 1}]},
            "study.yaml: strategies[0].adv_lamda: Extra inputs are not permitted",
        ),
    ],
)
def test_errors_are_one_line_naming_field_and_file(tmp_path, body, message):
    with pytest.raises(SpecError) as info:
        load_spec(_write(tmp_path, body))
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(message), text


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_spec_resolves_in_every_profile(name, profile):
    spec = load_spec(name, profile=profile)
    assert spec.profile == profile
    if spec.kind == "vae_fairness" and profile == "paper":  # refuses without a local ImageNet VGG-19 file
        with pytest.raises(SpecError, match="vae_fairness paper profile: .*vgg19-dcbb9e9d.pth"):
            get_kind(spec.kind).expand(spec)
        return
    assert len(get_kind(spec.kind).expand(spec)) >= 1


def test_training_parts_validate_without_importing_torch():
    code = (
        "import sys\n"
        "from fairmed.errors import SpecError\n"
        "from fairmed.studies.spec import resolve_spec\n"
        "spec = resolve_spec({'model': {'arch': 'resnet18', 'frozen': True}, 'strategies': ['erm', "
        "{'name': 'groupdro', 'dro_eta': 0.1}], 'train': {'epochs': 2, 'optimizer': 'sgd'}})\n"
        "try:\n"
        "    resolve_spec({'train': {'epochs': 0}})\n"
        "except SpecError as exc:\n"
        "    print(exc)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "spec: train.epochs: Input should be greater than or equal to 1 (got 0)",
        "False",
    ]


def test_run_with_a_bad_strategy_writes_nothing_and_trains_nothing(tmp_path, capsys):
    from fairmed.cli import main

    bad = _write(tmp_path, {"strategies": ["erm", "nope"], "train": {"epochs": 1}})
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main(["run", str(bad), "--out", str(out), "--jobs", "1"])
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("error: study.yaml: strategies[1].name: Input should be")
    assert not out.exists()


def test_builtin_lookup_and_bad_names(tmp_path):
    assert {"demo", "smoke_images", "smoke_embeddings"} <= set(builtin_names())
    assert load_spec("demo", profile="smoke").design.seed_list() == [0]
    assert load_spec("demo").design.seed_list() == [0, 1, 2]
    with pytest.raises(SpecError, match="neither a spec file nor a built-in study"):
        load_spec("no_such_study")
    with pytest.raises(SpecError, match="missing.yaml: spec file not found"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(SpecError, match="bad.yaml: not valid YAML"):
        load_spec(bad)


def test_expand_grid_and_run_ids():
    spec = resolve_spec(
        {
            "name": "g",
            "strategies": [
                "erm",
                {"name": "adversarial", "adv_lambda": 2},
                {"name": "erm", "label": "erm_b"},
            ],
            "design": {"repeats": 2},
        }
    )
    runs = classification.expand(spec)
    assert [(r.config, r.method, r.seed) for r in runs] == [
        ("default", "erm", 0),
        ("default", "erm", 1),
        ("default", "adversarial", 0),
        ("default", "adversarial", 1),
        ("default", "erm_b", 0),
        ("default", "erm_b", 1),
    ]
    assert runs[2].params == {"name": "adversarial", "adv_lambda": 2}
    assert runs[4].params == {"name": "erm"}
    assert runs[3].run_id == "default__adversarial__s1"
    assert runs[3].keys == {"study": "g", "config": "default", "method": "adversarial", "seed": 1}
    assert runs[0].study_spec() == spec
    grid = grid_runs(spec, {"m": {"a": 1}}, {"c1": {"a": 0, "b": 2}, "c/2": {}})
    assert [(r.config, r.params) for r in grid[::2]] == [("c1", {"a": 1, "b": 2}), ("c/2", {"a": 1})]
    assert grid[2].run_id == "c-2__m__s0"


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ratios: list[float] = [0.5]


def _expand(spec):
    return [
        RunSpec(spec.name, f"r{r}", "erm", 0, spec.model_dump(mode="json")) for r in spec.settings().ratios
    ]


def test_kind_fields_validate_extra_fields(tmp_path):
    register_kind("test_ratios", StudyKind("test_ratios", _expand, classification.execute, fields=_Fields))
    try:
        spec = load_spec(_write(tmp_path, {"kind": "test_ratios", "ratios": [0.1, 0.9]}))
        assert [r.config for r in get_kind("test_ratios").expand(spec)] == ["r0.1", "r0.9"]
        with pytest.raises(SpecError, match=r"^study.yaml: ratio: Extra inputs are not permitted"):
            load_spec(_write(tmp_path, {"kind": "test_ratios", "ratio": [0.1]}))
        with pytest.raises(SpecError, match="target must be 'module:attribute'"):
            register_kind("x", "no_colon")
    finally:
        KINDS.pop("test_ratios")
