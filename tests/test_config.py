"""Recipes, typed overrides, unknown keys with suggestions, round trip to YAML."""

from __future__ import annotations

import pytest
import yaml

from adaptcli.config import RunConfig, from_dict, resolve, shipped_recipes
from adaptcli.errors import ConfigError
from adaptcli.runs.folder import load_run_config


def test_defaults_are_the_papers():
    config = resolve(None, "adaptformer")
    assert (config.method_options.mid_dim, config.method_options.scale) == (64, 0.1)
    assert config.method_options.form == "parallel" and config.method_options.layernorm == "none"
    from adaptcli.methods.arc.config import arc_dropout

    arc = resolve(None, "arc").method_options
    assert (arc.dim, arc_dropout(arc), arc.scale_init) == (50, 0.1, "official")  # dropout null: 0.1 off Swin
    assert resolve(None, "vpt_deep").method_options.tokens == 1


def test_overrides_are_typed():
    config = resolve("quick", "adaptformer", ["method.mid_dim=16", "train.epochs=3", "train.lr=1e-2",
                                              "method.layers=[0, 2]", "train.clip_grad=null"])
    assert config.method_options.mid_dim == 16
    assert config.train.epochs == 3
    assert config.train.lr == pytest.approx(0.01) and isinstance(config.train.lr, float)
    assert config.method_options.layers == [0, 2]
    assert config.train.clip_grad is None


def test_int_accepted_for_float_but_not_the_reverse():
    assert resolve(None, "linear", ["train.lr=1"]).train.lr == 1.0
    with pytest.raises(ConfigError, match="train.epochs: expected int"):
        resolve(None, "linear", ["train.epochs=2.5"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("method.mid_dim=abc", "method.mid_dim: expected int"),
        ("method.form=diagonal", "method.form: expected one of 'parallel' | 'sequential'"),
        ("train.precision=fp8", "train.precision"),
        ("data.flip=maybe", "data.flip: expected bool"),
        # pydantic's lax mode would read these as 1, 0.0 and 1.0: refused as before pydantic
        ("train.epochs=true", r"train.epochs: expected int, got True"),
        ("train.lr=false", r"train.lr: expected float, got False"),
        ("data.crop_scale=[0.5,true]", r"data.crop_scale: expected list of float, got \[0.5, True\]"),
    ],
)
def test_type_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        resolve(None, "adaptformer", [override])


@pytest.mark.parametrize(
    "override, suggestion",
    [("method.middim=3", "method.mid_dim"), ("train.epoch=3", "train.epochs"), ("trian.lr=1", "train.lr")],
)
def test_unknown_keys_suggest_the_nearest(override, suggestion):
    with pytest.raises(ConfigError, match=f"did you mean '{suggestion}'"):
        resolve(None, "adaptformer", [override])


def test_method_options_belong_to_their_method():
    with pytest.raises(ConfigError, match="unknown configuration key 'method.mid_dim'"):
        resolve(None, "arc", ["method.mid_dim=3"])


def test_unknown_method_suggests():
    with pytest.raises(ConfigError, match="did you mean 'adaptformer'"):
        resolve(None, "adaptfromer")


def test_override_needs_equals():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        resolve(None, "linear", ["train.epochs"])


def test_per_method_sections_apply_to_their_method_only(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "train": {"optimizer": "sgd", "lr": 0.1},
        "per_method": {"arc": {"train": {"optimizer": "adamw", "lr": 0.01}, "method": {"dim": 10}}},
    }))
    arc = resolve(recipe, "arc")
    assert (arc.train.optimizer, arc.train.lr, arc.method_options.dim) == ("adamw", 0.01, 10)
    vpt = resolve(recipe, "vpt_deep")
    assert (vpt.train.optimizer, vpt.train.lr) == ("sgd", 0.1)
    # --set wins over the per-method section
    assert resolve(recipe, "arc", ["train.lr=0.5"]).train.lr == 0.5


def test_round_trip_through_yaml(tmp_path):
    config = resolve("quick", "arc_att", ["method.dim=7", "train.epochs=4"])
    config.save(tmp_path / "config.yaml")
    again = load_run_config(tmp_path / "config.yaml")
    assert again == config
    assert isinstance(again, RunConfig)


def test_a_run_saved_with_a_warmup_as_long_as_the_run_still_reads(tmp_path):
    """Earlier adaptcli accepted it (the warm-up was cut to the run); its config.yaml reads as trained."""
    tree = resolve("vtab", "arc").to_dict()
    tree["train"]["epochs"] = 2
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tree))
    stored = load_run_config(tmp_path / "config.yaml")
    assert (stored.train.epochs, stored.train.warmup_epochs) == (2, 10)
    with pytest.raises(ConfigError, match=r"train.warmup_epochs \(10\) must be below train.epochs \(2\)"):
        resolve(tree, "arc")  # as a recipe for a new run, it is refused


def test_recipe_by_path_and_bad_recipes(tmp_path):
    with pytest.raises(ConfigError, match="neither a shipped recipe"):
        resolve(tmp_path / "missing.yaml", "linear")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve(bad, "linear")


@pytest.mark.parametrize("name", sorted(shipped_recipes()))
@pytest.mark.parametrize("method", ["adaptformer", "arc", "arc_att", "vpt_shallow", "vpt_deep", "linear", "full"])
def test_every_shipped_recipe_validates_for_every_method(name, method):
    config = resolve(name, method)
    text = shipped_recipes()[name].read_text()
    assert text.startswith("#") and "adaptcli finetune" in text.splitlines()[1] + text.splitlines()[0] + text
    assert config.method == method


@pytest.mark.parametrize(
    "method, override, message",
    [
        ("arc", "train.batch_size=0", "train.batch_size=0 is out of range (expected >= 1)"),
        ("arc", "train.accum_steps=0", "train.accum_steps=0 is out of range (expected >= 1)"),
        ("arc", "train.epochs=0", "train.epochs=0 is out of range (expected >= 1)"),
        ("arc", "train.epochs=-1", "train.epochs=-1 is out of range (expected >= 1)"),
        ("arc", "data.workers=-1", "data.workers=-1 is out of range (expected >= 0)"),
        ("arc", "data.crop_scale=[0.5]", "data.crop_scale=[0.5] is out of range (expected 2 values, increasing, each in (0, 1])"),
        ("arc", "data.crop_scale=[0.9,0.2]", "expected 2 values, increasing"),
        ("arc", "data.crop_scale=[0,1]", "each in (0, 1]"),
        ("arc", "train.label_smoothing=1", "train.label_smoothing=1.0 is out of range (expected in [0, 1))"),
        ("arc", "train.lr=0", "train.lr=0.0 is out of range (expected > 0)"),
        ("arc", "train.save_every_steps=0", "train.save_every_steps=0 is out of range (expected >= 1)"),
        ("arc", "model.drop_path=1.5", "model.drop_path=1.5 is out of range (expected in [0, 1))"),
        ("arc", "method.dim=0", "method.dim=0 is out of range (expected >= 1)"),
        ("adaptformer", "method.mid_dim=-4", "method.mid_dim=-4 is out of range (expected >= 1)"),
        ("adaptformer", "method.layers=[0,-1]", "method.layers=[0, -1] is out of range (expected each >= 0)"),
        ("vpt_deep", "method.tokens=-2", "method.tokens=-2 is out of range (expected >= 1)"),
        ("vpt_shallow", "method.dropout=1", "method.dropout=1.0 is out of range (expected in [0, 1))"),
    ],
)
def test_numbers_outside_their_range_are_named_with_the_range(method, override, message):
    with pytest.raises(ConfigError) as info:
        resolve("quick", method=method, overrides=[override])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_ranges_keep_valid_edges_and_null():
    config = resolve("quick", method="arc", overrides=["data.workers=0", "data.crop_scale=[1,1]", "train.clip_grad=null",
                                                       "train.save_every_steps=5", "train.label_smoothing=0"])
    assert config.data.crop_scale == [1.0, 1.0] and config.train.save_every_steps == 5


def test_image_size_must_fit_the_patch_size():
    from adaptcli.errors import AdaptError
    from adaptcli.models.build import create_backbone

    with pytest.raises(AdaptError, match=r"model.img_size=30 is not a multiple of test_vit's patch size 16"):
        create_backbone(resolve("quick", overrides=["model.name=test_vit", "model.img_size=30"]).model, 3)
    with pytest.raises(AdaptError, match=r"model.num_frames=5.*tubelet_size 2"):
        create_backbone(resolve("quick", overrides=["model.name=video_vit_test", "model.img_size=32",
                                                    "model.num_frames=5"]).model, 3)


@pytest.mark.parametrize("recipe, method, optimizer, lr, weight_decay", [
    ("vtab", "adapter_plus", "adamw", 1e-3, 1e-4),  # visinf/adapter_plus conf/train/optimizer/adamw.yaml
    ("vtab", "lora", "adamw", 1e-3, 1e-4),  # Adapter+'s LoRA baseline
    ("vtab", "ssf", "adamw", 5e-3, 5e-5),  # SSF's DTD script
    ("fgvc", "ssf", "adamw", 1e-2, 5e-2),  # SSF's CUB script
    ("cifar100", "ssf", "adamw", 1e-3, 0.05),  # SSF's CIFAR-100 script
    ("vtab", "bitfit", "adamw", 1e-2, 0.0),  # no VTAB setting in the paper: the recipe's own
])
def test_recipes_carry_each_method_s_paper_defaults(recipe, method, optimizer, lr, weight_decay):
    config = resolve(recipe, method)
    assert (config.train.optimizer, config.train.lr, config.train.weight_decay) == (optimizer, lr, weight_decay)


def test_mapping_options_take_yaml_and_refuse_other_values():
    config = resolve(None, "peft", ["method.peft_type=VERA", "method.peft_config={r: 256, target_modules: [qkv, fc1]}"])
    assert config.method_options.peft_config == {"r": 256, "target_modules": ["qkv", "fc1"]}
    assert from_dict(config.to_dict()).method_options.peft_config == config.method_options.peft_config
    with pytest.raises(ConfigError, match="method.peft_config: expected a mapping"):
        resolve(None, "peft", ["method.peft_config=[r]"])


@pytest.mark.parametrize("tree, message", [
    ({"train": [1, 2]}, "train: expected a mapping of keys, got [1, 2]"),
    ({"trian": {"lr": 0.1}}, "unknown configuration key 'trian': did you mean 'train'?"),
    ({"train": {"epoch": 3}}, "unknown configuration key 'train.epoch': did you mean 'train.epochs'?"),
    ({"method": {"name": "arc", "dimm": 3}}, "unknown configuration key 'method.dimm': did you mean 'method.dim'?"),
    ({"train": {"clip_grad": "abc"}}, "train.clip_grad: expected float or null, got 'abc'"),
])
def test_recipe_sections_are_refused_in_one_line_naming_the_key(tree, message):
    with pytest.raises(ConfigError) as info:
        resolve(tree, "arc")
    assert str(info.value) == message
