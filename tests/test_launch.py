"""The launchers of launch/: shellcheck-clean, and the commands they would run (DRY_RUN, or a fake SLURM).

The cloud ones cannot run here; their command lines are checked. local.sh runs for real in
tests/test_multihost.py."""
import os
import shutil
import stat
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "launch")
SCRIPTS = ["local.sh", "tpu_vm.sh", "xpk.sh", "slurm.sbatch", "setup.sh", "demo.sh", "test.sh"]


def _bash(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", os.path.join(LAUNCH, script), *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


def _commands(out: str) -> list[str]:
    return [line[2:] for line in out.splitlines() if line.startswith("+ ")]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="needs shellcheck (apt-get install shellcheck)")
def test_launchers_are_shellcheck_clean():
    r = subprocess.run(["shellcheck", "-x", *[f"launch/{s}" for s in SCRIPTS]], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_tpu_vm_all_creates_installs_starts_and_streams_worker_zero():
    env = {"DRY_RUN": "1", "TPU_NAME": "svae", "ZONE": "europe-west4-b", "ACCELERATOR_TYPE": "v5p-16",
           "QUEUED": "1", "PROJECT": "proj"}
    r = _bash("tpu_vm.sh", "all", "--config", "configs/paper.py", "--workdir", "gs://b/run",
              "--config.mesh.shape=(-1,1)", env=env)
    assert r.returncode == 0, r.stderr
    cmds = _commands(r.stdout)
    assert len(cmds) == 6, cmds
    assert cmds[0].startswith("gcloud --project proj compute tpus queued-resources create svae --node-id svae")
    assert "--accelerator-type v5p-16 --runtime-version v2-alpha-tpuv5" in cmds[0]
    assert cmds[1].startswith("git -C ") and " archive " in cmds[1]
    assert "tpu-vm scp" in cmds[2] and "--worker all" in cmds[2]
    assert "launch/setup.sh" in cmds[3] and "--worker all" in cmds[3]
    assert "--worker all" in cmds[4] and "speechvae\\ --distributed\\ on\\ train" in cmds[4]
    assert "--config.mesh.shape=\\\\\\(-1\\\\\\,1\\\\\\)" in cmds[4]  # quoted for the remote shell
    assert "--worker 0" in cmds[5] and "tail" in cmds[5]
    stop = _commands(_bash("tpu_vm.sh", "stop", env=env).stdout)
    assert len(stop) == 1 and "kill\\ -TERM" in stop[0] and "--worker all" in stop[0]
    delete = _commands(_bash("tpu_vm.sh", "delete", env=env).stdout)
    assert delete == ["gcloud --project proj compute tpus queued-resources delete svae --zone europe-west4-b "
                      "--force --quiet "]


def test_tpu_vm_needs_its_settings():
    r = _bash("tpu_vm.sh", "create", env={"DRY_RUN": "1", "TPU_NAME": "", "ZONE": "z"})
    assert r.returncode != 0 and "TPU_NAME" in r.stderr
    r = _bash("tpu_vm.sh", "explode", env={"DRY_RUN": "1", "TPU_NAME": "t", "ZONE": "z"})
    assert r.returncode == 2 and "Steps" in r.stderr


def test_xpk_create_restarts_on_preemption_and_installs_from_the_checkout():
    env = {"DRY_RUN": "1", "CLUSTER": "c", "WORKLOAD": "w", "TPU_TYPE": "v5litepod-16", "NUM_SLICES": "2"}
    r = _bash("xpk.sh", "create", "--config", "configs/paper.py", "--workdir", "gs://b/r", env=env)
    assert r.returncode == 0, r.stderr
    [cmd] = _commands(r.stdout)
    assert cmd.startswith("xpk workload create --cluster c --workload w --tpu-type v5litepod-16 --num-slices 2")
    assert f"--script-dir {ROOT}" in cmd and "--restart-on-exit-codes 75" in cmd
    assert "launch/setup.sh" in cmd and "--distributed\\ on\\ train\\ --config\\ configs/paper.py" in cmd
    r = _bash("xpk.sh", "create", "--workdir", "gs://b/r", env={**env, "DOCKER_IMAGE": "gcr.io/p/svae"})
    [cmd] = _commands(r.stdout)
    assert "--docker-image gcr.io/p/svae" in cmd and "setup.sh" not in cmd


def _fake_slurm(tmp_path, srun_exit: int) -> dict:
    """PATH with an `srun` that records its arguments and exits `srun_exit`, and an `scontrol` that records."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, code in (("srun", srun_exit), ("scontrol", 0)):
        path = bin_dir / name
        path.write_text(f'#!/usr/bin/env bash\necho "$*" >> "{tmp_path}/{name}.calls"\nexit {code}\n')
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "42", "SLURM_SUBMIT_DIR": ROOT}


def test_slurm_one_process_per_gpu_requeues_after_a_preemption_stop(tmp_path):
    env = _fake_slurm(tmp_path, srun_exit=75)
    env.update(SLURM_NTASKS_PER_NODE="8", SLURM_GPUS_ON_NODE="8")
    r = _bash("slurm.sbatch", "--config", "configs/paper.py", "--workdir", "/shared/run", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    srun = (tmp_path / "srun.calls").read_text().split()
    assert srun[0].endswith("/bin/speechvae") and srun[1:4] == ["--distributed", "on", "train"]
    assert "--local-device-ids" not in srun and srun[-2:] == ["--workdir", "/shared/run"]
    assert (tmp_path / "scontrol.calls").read_text().split() == ["requeue", "42"]


def test_slurm_one_process_per_node_drives_every_gpu_and_passes_failures_on(tmp_path):
    env = _fake_slurm(tmp_path, srun_exit=1)
    env.update(SLURM_NTASKS_PER_NODE="1", SLURM_GPUS_ON_NODE="4")
    r = _bash("slurm.sbatch", "--workdir", "/shared/run", env=env)
    assert r.returncode == 1
    srun = (tmp_path / "srun.calls").read_text().split()
    assert srun[1:6] == ["--distributed", "on", "--local-device-ids", "0,1,2,3", "train"]
    assert not (tmp_path / "scontrol.calls").exists()


def test_local_sh_checks_its_arguments():
    r = _bash("local.sh", "two", "train")
    assert r.returncode == 2 and "processes" in r.stderr
