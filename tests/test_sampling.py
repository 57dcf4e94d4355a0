import pytest

from engine.chat.sampling import HELP, Sampling, SamplingError, load_presets, preset


def test_presets_hold_the_tutorials_values():
    presets = load_presets()
    assert set(presets) == {"Leaderboard", "Roleplay chat", "Precise"}
    lb = presets["Leaderboard"]
    assert (lb.top_k, lb.top_p, lb.min_p, lb.temperature, lb.repetition_penalty) == (50, 0.9, 0.01, 0.8, 1.1)
    rp = presets["Roleplay chat"]
    assert (rp.temperature, rp.top_k, rp.top_p, rp.repetition_penalty) == (0.95, 20, 0.85, 1.2)
    assert presets["Precise"].greedy
    assert presets["Precise"].generate_kwargs()["do_sample"] is False
    assert lb.generate_kwargs()["do_sample"] is True


def test_every_parameter_has_one_line_of_help():
    for name in Sampling.model_fields:
        assert name in HELP and "\n" not in HELP[name] and len(HELP[name]) > 20


@pytest.mark.parametrize(
    "field, value",
    [("temperature", -0.1), ("temperature", 3), ("top_p", 0), ("top_k", -1), ("min_p", 1.5),
     ("repetition_penalty", 0.5), ("max_new_tokens", 0), ("seed", -4)],
)
def test_out_of_range_values_are_named(field, value):
    with pytest.raises(SamplingError) as err:
        Sampling.parse(**{field: value})
    assert f"'{field}'" in str(err.value) and repr(value) in str(err.value)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(SamplingError, match="Leaderboard, Roleplay chat, Precise"):
        preset("Wild")


def test_unknown_field_is_refused():
    with pytest.raises(SamplingError, match="'temprature'"):
        Sampling.parse(temprature=0.5)
