"""Links from the Prefect summary into the MLflow UI."""

from components.run_links import registration_links


def test_embedded_store_links_to_make_ui_and_a_server_to_itself():
    outcome = {"run_id": "abc", "version": "4"}
    local = registration_links("sqlite:////x/mlflow.db", "regionops", outcome, "7")
    assert local == {
        "run": "http://127.0.0.1:5000/#/experiments/7/runs/abc",
        "model_version": "http://127.0.0.1:5000/#/models/regionops/versions/4",
    }
    served = registration_links("https://mlflow.example/", "my model", outcome, "7")
    assert served["model_version"] == "https://mlflow.example/#/models/my%20model/versions/4"


def test_unknown_experiment_or_version_gives_no_broken_link():
    assert registration_links("sqlite:///m.db", "regionops", {"run_id": "abc"}, None) == {}
