from helpers import bucket_keys, git_out, message, run_worker


def test_worker_runs_the_whole_pipeline(base_env, prewarm, s3, site_remote, make_bucket):
    prewarm()
    bucket = make_bucket("acme")
    response = run_worker(message(), base_env)
    print(response["_log"][-3000:])
    assert response["success"], response
    assert [s["status"] for s in response["steps"]] == ["ok"] * 6
    assert "index.html" in bucket_keys(s3, bucket)
    assert git_out(site_remote, "log", "-1", "--format=%s", "thread-chat-1") == "Make the header blue"
