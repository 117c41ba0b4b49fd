import json

from dppo_robot.train.metrics_log import MetricsLog


def test_rows_survive_and_resume_truncates(tmp_path):
    log = MetricsLog(tmp_path, "train")
    for i in range(1, 6):
        log.log({"itr": i, "loss": 1.0 / i})
    with open(tmp_path / "train.jsonl", "a") as f:
        f.write('{"itr": 6, "lo')  # a torn line from a crash
    again = MetricsLog(tmp_path, "train")
    assert [r["itr"] for r in again.rows] == [1, 2, 3, 4, 5]
    again.truncate_after(3)
    again.log({"itr": 4, "loss": 0.3, "extra": 1})
    lines = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert [r["itr"] for r in lines] == [1, 2, 3, 4]
    header = (tmp_path / "train.csv").read_text().splitlines()[0]
    assert header == "itr,loss,extra"
    png = again.plot(["loss", "missing"])
    assert png is not None and png.stat().st_size > 1000
