import pytest

from recsys.cli import main as cli
from recsys.cli import serving as cli_serving
from recsys.data.loading import load_movielens
from recsys.errors import DataUnavailableError
from tests.synthetic import fit, make_world


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return fit(make_world(), tmp_path_factory.mktemp("runs"), "mf-bpr").run.path


@pytest.fixture(autouse=True)
def synthetic_data(monkeypatch):
    world = make_world()
    monkeypatch.setattr(cli_serving, "load_movielens", lambda data_dir, download: world)
    return world


def test_recommend_with_explanations(run_dir, capsys):
    assert cli.main(["recommend", str(run_dir), "--user", "3", "--k", "2", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "mf-bpr (dot) for user 3" in out
    assert "because" in out and "item_bias" in out


@pytest.mark.parametrize("args", [
    ["recommend", "--user", "3"], ["similar", "--movie", "4"], ["similar-users", "--user", "30"],
    ["project"],
])
def test_every_serving_command_names_its_source(run_dir, capsys, args):
    assert cli.main([args[0], str(run_dir), *args[1:]]) == 0
    assert capsys.readouterr().err.startswith("data: synthetic from test\n")


def test_recommend_text_is_compact(run_dir, capsys, synthetic_data, monkeypatch):
    long_title = "A Very Long Title " * 6 + "(1999)"
    movies = synthetic_data.movies.assign(title=synthetic_data.movies["title"].where(
        synthetic_data.movies["item_id"] % 2 == 0, long_title))
    world = type(synthetic_data)(synthetic_data.ratings, movies, synthetic_data.users,
                                 synthetic_data.name, synthetic_data.source)
    monkeypatch.setattr(cli_serving, "load_movielens", lambda data_dir, download: world)
    assert cli.main(["recommend", str(run_dir), "--user", "3", "--k", "10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["rank", "item_id", "title", "score"]
    assert all(len(line) <= cli_serving.WIDTH for line in lines), lines
    assert any("A Very Long Title A Very Long Title A..." in line for line in lines)


def test_similar_by_title_and_ambiguity(run_dir, capsys):
    assert cli.main(["similar", str(run_dir), "--movie", "alpha space 4", "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert "nearest to Alpha Space 4 (1994) [id 4]" in out and "overlap:" in out
    assert cli.main(["similar", str(run_dir), "--movie", "star trek"]) == 2
    err = capsys.readouterr().err
    assert "recsys similar: error:" in err and "Star Trek II (1982) [id 22]" in err


def test_similar_users_and_project(run_dir, capsys, tmp_path):
    assert cli.main(["similar-users", str(run_dir), "--user", "30", "--k", "3"]) == 0
    assert "users nearest to 30 by user embeddings" in capsys.readouterr().out
    out_csv = tmp_path / "map.csv"
    assert cli.main(["project", str(run_dir), "--method", "pca", "--out", str(out_csv)]) == 0
    assert "explained variance" in capsys.readouterr().out
    assert out_csv.read_text().startswith("item_id,x,y,norm,popularity,title,year,genres")


def test_errors_are_one_line(run_dir, capsys):
    assert cli.main(["recommend", str(run_dir), "--user", "999"]) == 2
    assert "unknown user id 999" in capsys.readouterr().err
    assert cli.main(["recommend", str(run_dir), "--user", "1", "--k", "0"]) == 2
    assert "--k must be at least 1" in capsys.readouterr().err


@pytest.mark.movielens
def test_smoke_on_movielens_100k(tmp_path, capsys, monkeypatch):
    try:
        ml = load_movielens(download=False)
    except DataUnavailableError:
        pytest.skip("MovieLens 100K is not available offline")
    monkeypatch.setattr(cli_serving, "load_movielens", lambda data_dir, download: ml)
    from recsys.data.protocol import SplitConfig
    from recsys.models.config import TrainConfig
    from recsys.storage.runs import train_run

    train_run(ml, SplitConfig(), TrainConfig(model="svd", dim=16), tmp_path / "svd")
    assert cli.main(["similar", str(tmp_path / "svd"), "--movie", "star wars 1977"]) == 0
    out = capsys.readouterr().out
    assert "nearest to Star Wars (1977) [id 50]" in out
    assert "Return of the Jedi (1983)" in out
