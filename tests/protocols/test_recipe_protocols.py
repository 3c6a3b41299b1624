"""Each method's recipe values against its official code's, transcribed here from the cited files (read
from visinf/adapter_plus and dongzelian/SSF), so a change to a recipe that drifts from a paper fails."""

from __future__ import annotations

import pytest

from adaptcli.config import recipe_sweep, resolve

# visinf/adapter_plus: conf/train/optimizer/adamw.yaml, conf/train/default.yaml (lr/100 start,
# lr/1000 end), conf/data/base_data.yaml, conf/config.yaml (vit.drop_path), conf/adapter/base_adapter.yaml.
ADAPTER_PLUS = {"train.optimizer": "adamw", "train.lr": 1e-3, "train.weight_decay": 1e-4, "train.epochs": 100,
                "train.warmup_epochs": 10, "train.warmup_lr": 1e-5, "train.min_lr": 1e-6,
                "train.schedule_unit": "epoch", "train.batch_size": 64, "train.clip_grad": None,
                "train.label_smoothing": 0.0, "model.drop_path": 0.1, "method.drop_path": 0.1}
ADAPTER_PLUS_VTAB = {**ADAPTER_PLUS, "method.bottleneck": 8}  # conf/experiment/vtab/adapter_plus_dim8.yaml
# conf/experiment/fgvc/adapter_plus_dim1-32.yaml dataset_dim
ADAPTER_PLUS_FGVC_DIM = {"CUB_200_2011": 2, "nabirds": 2, "OxfordFlower": 1, "Stanford-cars": 32, "Stanford-dogs": 1}
# conf/experiment/vtab/lora.yaml + conf/lora/base_lora.yaml: rank 8, scaling 1.0, dropout 0.1
DORA_VTAB = {**{k: v for k, v in ADAPTER_PLUS.items() if k != "method.drop_path"},
             "method.r": 8, "method.alpha": 8.0, "method.dropout": 0.1, "method.qkv": "split",
             "method.split_targets": ["q", "k"], "method.init": "lora", "method.dropout_mask": "shared"}
# adapter_plus/vit_adapter.py as it runs: LoRAAttention (lines 129-141) passes no init, so Adapter's default
# "houlsby" (line 30) applies, and each part's Adapter has its own Dropout (one mask per part)
LORA_VTAB = {**DORA_VTAB, "method.init": "houlsby", "method.dropout_mask": "per_part"}

# dongzelian/SSF train_scripts/vit/vtab/<script folder>/train_ssf.sh: --lr, --weight-decay, --drop-path
SSF_VTAB = {
    "caltech101": (1e-3, 5e-2, 0.1), "cifar": (5e-3, 5e-5, 0.0), "dtd": (5e-3, 5e-5, 0.0),
    "oxford_flowers102": (5e-3, 5e-5, 0.0), "oxford_iiit_pet": (5e-3, 5e-5, 0.0), "svhn": (1e-2, 5e-5, 0.0),
    "sun397": (5e-3, 5e-5, 0.0), "patch_camelyon": (5e-3, 5e-5, 0.0), "eurosat": (3e-3, 5e-2, 0.2),
    "resisc45": (2e-3, 5e-5, 0.1), "diabetic_retinopathy": (5e-3, 5e-5, 0.2), "clevr_count": (2e-3, 5e-2, 0.1),
    "clevr_dist": (5e-2, 5e-2, 0.1), "dmlab": (5e-3, 5e-5, 0.1), "kitti": (1e-2, 5e-5, 0.0),
    "dsprites_loc": (1e-2, 5e-5, 0.0), "dsprites_ori": (5e-3, 5e-5, 0.2), "smallnorb_azi": (2e-2, 5e-5, 0.1),
    "smallnorb_ele": (5e-3, 5e-2, 0.2),
}
# train_scripts/vit/fgvc/<dataset>/train_ssf.sh
SSF_FGVC = {"CUB_200_2011": (1e-2, 5e-2, 0.0), "nabirds": (2e-4, 5e-2, 0.1), "OxfordFlower": (1e-2, 5e-2, 0.1),
            "Stanford-cars": (2e-2, 5e-2, 0.0), "Stanford-dogs": (2.5e-4, 5e-2, 0.0)}
# Every SSF script: AdamW, 2 processes x --batch-size 32, --warmup-lr 1e-7 --warmup-epochs 10 --min-lr 1e-8,
# --epochs 100 plus timm 0.6 train.py's default --cooldown-epochs 10, its per-epoch cosine without prefix.
SSF_COMMON = {"train.optimizer": "adamw", "train.batch_size": 64, "train.warmup_lr": 1e-7, "train.warmup_epochs": 10,
              "train.min_lr": 1e-8, "train.epochs": 110, "train.cooldown_epochs": 10, "train.schedule_unit": "epoch",
              "train.warmup_prefix": False, "train.clip_grad": None, "train.label_smoothing": 0.0}


def value(config, dotted: str):
    section, key = dotted.split(".")
    return getattr(config.method_options if section == "method" else getattr(config, section), key)


def assert_values(config, expected: dict) -> None:
    got = {key: value(config, key) for key in expected}
    assert got == pytest.approx(expected) if all(isinstance(v, float) for v in expected.values()) else got == expected


@pytest.mark.parametrize("recipe", ["vtab", "fgvc"])
def test_adapter_plus_is_the_official_setting_without_a_sweep(recipe):
    expected = ADAPTER_PLUS_VTAB if recipe == "vtab" else ADAPTER_PLUS
    assert_values(resolve(recipe, "adapter_plus"), expected)
    assert recipe_sweep(recipe, "adapter_plus") == {}


@pytest.mark.parametrize("task, dim", sorted(ADAPTER_PLUS_FGVC_DIM.items()))
def test_adapter_plus_fgvc_bottleneck_per_dataset(task, dim):
    assert resolve("fgvc", "adapter_plus", task=task).method_options.bottleneck == dim


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_lora_and_dora_take_adapter_plus_lora_baseline_and_the_grid_holds_its_lr(method):
    expected = LORA_VTAB if method == "lora" else DORA_VTAB
    assert_values(resolve("vtab", method), expected)
    assert expected["train.lr"] in recipe_sweep("vtab", method)["train.lr"]


@pytest.mark.parametrize("recipe, table", [("vtab", SSF_VTAB), ("fgvc", SSF_FGVC)])
def test_ssf_each_task_has_its_script_values(recipe, table):
    assert recipe_sweep(recipe, "ssf") == {}
    for task, (lr, wd, drop_path) in table.items():
        config = resolve(recipe, "ssf", task=task)
        augmentation = SSF_FGVC_AUGMENT if recipe == "fgvc" else {}
        assert_values(config, {**SSF_COMMON, "train.ema": SSF_FGVC_EMA.get(task), **augmentation})
        assert (config.train.lr, config.train.weight_decay, config.model.drop_path) == (lr, wd, drop_path), task


# train_scripts/vit/fgvc/<dataset>/train_ssf.sh --model-ema-decay
SSF_FGVC_EMA = {"CUB_200_2011": 0.9998, "nabirds": 0.9998, "OxfordFlower": 0.999, "Stanford-cars": 0.9998,
                "Stanford-dogs": 0.9998}
# The FGVC scripts set --simple-aug and no --mixup/--cutmix/--smoothing: train.py's defaults (lines 246-260)
# with data/transforms_factory.py transforms_simpleaug_train (random resized crop --scale 0.08 1.0 + flip 0.5),
# tested at the model's crop_pct 0.9 (models/vision_transformer.py _cfg).
SSF_FGVC_AUGMENT = {"train.mixup": 0.8, "train.cutmix": 1.0, "train.label_smoothing": 0.1, "train.mixup_prob": 1.0,
                    "train.mixup_switch_prob": 0.5, "train.mixup_mode": "batch", "train.random_erasing": 0.0,
                    "data.augment": "random_resized_crop", "data.crop_scale": [0.08, 1.0], "data.flip": True,
                    "data.crop_pct": 0.9, "data.rand_augment": None}
# train_scripts/vit/cifar_100/train_ssf.sh with train.py's defaults (--aa, --reprob, --mixup, --cutmix, --smoothing)
SSF_CIFAR100 = {**SSF_COMMON, "train.lr": 1e-3, "train.weight_decay": 0.05, "train.batch_size": 128,
                "train.ema": 0.99992, "train.label_smoothing": 0.1, "train.mixup": 0.8, "train.cutmix": 1.0,
                "train.random_erasing": 0.25, "data.rand_augment": "rand-m9-mstd0.5-inc1", "model.drop_path": 0.0,
                "head.norm": "none"}


@pytest.mark.parametrize("task, decay", sorted(SSF_FGVC_EMA.items()))
def test_ssf_fgvc_keeps_its_scripts_weight_ema(task, decay):
    assert resolve("fgvc", "ssf", task=task).train.ema == decay


def test_ssf_cifar100_is_its_script_with_train_py_defaults():
    assert_values(resolve("cifar100", "ssf"), SSF_CIFAR100)


def test_vtab_per_task_names_are_vtab_tasks():
    from adaptcli.data.prepare.sources.vtab import VTAB_TASKS

    assert sorted(SSF_VTAB) == sorted(VTAB_TASKS)


def test_a_task_without_per_task_values_gets_the_method_section():
    assert resolve("vtab", "ssf", task="not_a_vtab_task").train.lr == resolve("vtab", "ssf").train.lr


@pytest.mark.parametrize("method, paper_lr", [("arc", 1e-2), ("vpt_deep", 0.5), ("full", 1e-4)])
def test_other_grids_hold_the_recipe_value(method, paper_lr):
    assert resolve("vtab", method).train.lr == paper_lr
    assert paper_lr in recipe_sweep("vtab", method)["train.lr"]


# MCG-NJU/VideoMAE run_class_finetuning.py defaults with scripts/ssv2/..._epoch_2400/finetune.sh and
# scripts/ucf101/..._epoch_3200/finetune.sh (the small-dataset protocol the hmdb51 recipe follows).
VIDEOMAE_COMMON = {"train.optimizer": "adamw", "train.lr": 5e-4, "train.lr_base_batch": 256,
                   "train.weight_decay": 0.05, "train.warmup_epochs": 5, "train.label_smoothing": 0.1,
                   "train.mixup": 0.8, "train.cutmix": 1.0, "train.mixup_prob": 1.0, "train.mixup_switch_prob": 0.5,
                   "train.mixup_mode": "batch", "train.random_erasing": 0.25, "train.clip_grad": None,
                   "data.rand_augment": "rand-m7-n4-mstd0.5-inc1", "model.num_frames": 16, "model.img_size": 224,
                   "data.crop_scale": [0.08, 1.0], "data.repeated_aug": 2}  # both scripts: --num_sample 2
VIDEOMAE = {
    "ssv2_full_videomae": {**VIDEOMAE_COMMON, "train.epochs": 30, "train.batch_size": 6, "train.layer_decay": 0.75,
                           "train.min_lr": 1e-6, "train.warmup_lr": 1e-6, "model.drop_path": 0.1, "data.flip": False,
                           "data.sampling": "segment", "eval.views": "2x3",
                           "model.head_dropout": 0.0},  # --fc_drop_rate unset: line 41's default 0.0
    "hmdb51_full_videomae": {**VIDEOMAE_COMMON, "train.epochs": 100, "train.batch_size": 16, "train.layer_decay": 0.7,
                             "train.min_lr": 1e-5, "train.warmup_lr": 1e-8, "model.drop_path": 0.2, "data.flip": True,
                             "data.sampling": "stride", "data.stride": 4, "eval.views": "5x3",
                             "model.head_dropout": 0.5},  # the ucf101 script's --fc_drop_rate 0.5
}


@pytest.mark.parametrize("recipe", sorted(VIDEOMAE))
def test_full_fine_tuning_recipes_carry_videomae_settings(recipe):
    assert_values(resolve(recipe, "full"), VIDEOMAE[recipe])


# facebookresearch/vjepa2 configs/eval/vitl/{ssv2,k400}.yaml and in1k.yaml: classifier and optimization blocks
# (multihead_kwargs: every lr x weight_decay pair; warmup in epochs from start_lr; final_lr 0; num_epochs 20)
VJEPA2_VIDEO = {"method.depth": 4, "method.heads": 16, "method.lrs": [5e-3, 3e-3, 1e-3, 3e-4, 1e-4],
                "method.weight_decays": [0.01, 0.1, 0.4, 0.8], "train.epochs": 20, "train.warmup_epochs": 0,
                "train.min_lr": 0.0, "train.batch_size": 4, "train.optimizer": "adamw", "train.clip_grad": None,
                "train.lr_base_batch": None, "model.img_size": 256, "model.num_frames": 16, "data.stride": 4,
                "data.flip": False, "train.random_erasing": 0.25, "eval.views": "2x3"}
VJEPA2_IN1K = {"method.depth": 4, "method.heads": 16, "method.lrs": [5e-4, 1e-3, 1.5e-3, 2e-3],
               "method.weight_decays": [5e-4, 1e-3, 2e-3, 4e-3, 8e-3], "train.epochs": 20, "train.warmup_epochs": 5,
               "train.warmup_lr": 2e-4, "train.min_lr": 0.0, "train.batch_size": 16, "train.optimizer": "adamw",
               "train.clip_grad": None, "train.lr_base_batch": None, "model.img_size": 256,
               "train.random_erasing": 0.25}


@pytest.mark.parametrize("recipe, expected, probes", [("vjepa2_probe_video", VJEPA2_VIDEO, 20),
                                                      ("vjepa2_probe_in1k", VJEPA2_IN1K, 20)])
def test_vjepa2_probe_recipes_hold_the_official_grid(recipe, expected, probes):
    from adaptcli.methods.registry import probe_settings

    config = resolve(recipe, "attentive_probe")
    for key, wanted in expected.items():
        section, name = key.split(".")
        got = getattr(config.method_options if section == "method" else getattr(config, section), name)
        assert got == (pytest.approx(wanted) if isinstance(wanted, (float, list)) else wanted), key
    settings = probe_settings("attentive_probe", config.method_options, config.train.lr, config.train.weight_decay)
    assert len(settings) == probes and len(set(settings)) == probes
    assert recipe_sweep(recipe, "attentive_probe") == {}
