"""Secret scrubbing (redact.py): one set of rules for config.json, recipe.json and the dataset card. Builds check
end to end that no key reaches disk (test_run_dir.py)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("value, kept", [
    ("https://alice:pa55word@llm.example.com/v1?api_key=abc123&region=eu", "https://llm.example.com/v1?region=eu"),
    ("http://localhost:8000/v1?api-key=sk-x&key=k", "http://localhost:8000/v1"),
    ("Bearer abc.def", "(removed)"),
    ("sk-proj-abc", "(removed)"),
    ("gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
    # an Azure SAS signature and an Azure Functions key travel in queries under short names
    ("https://a.blob.example.net/v1?api-version=2024&sig=SIGSECRET&code=FUNCSECRET", "https://a.blob.example.net/v1?api-version=2024"),
])
def test_one_set_of_rules_scrubs_config_json_and_the_card(value, kept):
    from longwriter_data.publish.card import public_config
    from longwriter_data.redact import without_secrets

    recipe = {"run_dir": "r", "backend": {"base_url": value, "api_key_env": "MY_VAR"}, "extra": {"x-api-key": "v"}}
    # config.json keeps the variable's name (commands on a run directory call the endpoint again), never a key
    assert without_secrets(recipe) == {"run_dir": "r", "backend": {"base_url": kept, "api_key_env": "MY_VAR"},
                                       "extra": {}}
    assert public_config(recipe) == {"backend": {"base_url": kept}, "extra": {}}
    assert without_secrets(without_secrets(recipe)) == without_secrets(recipe)


def test_secret_names_are_found_by_their_parts_and_our_own_settings_are_kept():
    from longwriter_data.redact import without_secrets

    extra = {"metadata": {"pw": "hunter2"}, "x_access_code": "s", "session_id": "abc", "db-passphrase": "p",
             "top_p": 0.9, "language_code": "en", "max_tokens": 10}
    assert without_secrets({"extra_body": extra, "backend": {"token_param": "max_completion_tokens"}}) == {
        "extra_body": {"metadata": {}, "top_p": 0.9, "language_code": "en", "max_tokens": 10},
        "backend": {"token_param": "max_completion_tokens"}}  # a setting the card must show to reproduce the run
