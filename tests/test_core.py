"""Tests of the exported `core` module as users import it."""
import json
import pytest
from elf_s2t_nb.core import (Config, ConfigError, PRESETS, get_preset, load_config, override, save_config)


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_preset_round_trip(tmp_path, name, suffix):
    cfg = get_preset(name)
    assert load_config(save_config(cfg, tmp_path / f"c{suffix}")) == cfg


def test_unknown_field_names_the_key(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"flow": {"noise_scal": 2}}))
    with pytest.raises(ConfigError, match="flow.noise_scal"):
        load_config(tmp_path / "c.json")


def test_override_types():
    cfg = override(Config(), ["sample.cfg_scale=3", "data.task=s2tt"])
    assert cfg.sample.cfg_scale == 3.0 and isinstance(cfg.sample.cfg_scale, float) and cfg.data.task == "s2tt"
    with pytest.raises(ConfigError, match="must be int"):
        override(Config(), ["model.depth=deep"])
