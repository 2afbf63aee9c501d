"""Fabric 1.x (Fabric3 1.14) fabfile for bench/gateway/run.sh: FLEET_CMD on each host through
env.gateway = FLEET_GATEWAY, with shell=False and pty=False (the same remote command as every
other tool). Prints "FLEETOK host" per host that exited 0 and printed exactly "ok". Host keys,
the gateway's included, are checked against FLEET_KNOWN_HOSTS; unknown ones are rejected.
With -P each host runs in a forked worker, which opens its own gateway connection.
"""
import os

from fabric.api import env, run, task

env.user = "root"
env.port = os.environ.get("FLEET_PORT", "2222")
env.gateway = os.environ["FLEET_GATEWAY"]
env.key_filename = os.environ["FLEET_KEY"]
env.system_known_hosts = os.environ["FLEET_KNOWN_HOSTS"]
env.disable_known_hosts = True
env.reject_unknown_hosts = True
env.use_ssh_config = False
env.no_agent = True
env.no_keys = True
env.abort_on_prompts = True
env.skip_bad_hosts = True
env.warn_only = True
env.connection_attempts = 1
env.timeout = 60

CMD = os.environ.get("FLEET_CMD", "echo ok")


@task
def bench():
    r = run(CMD, shell=False, pty=False)
    if r.succeeded and r.strip() == "ok":
        os.write(1, ("FLEETOK %s\n" % env.host).encode())
    else:
        os.write(1, ("FLEETFAIL %s rc=%s\n" % (env.host, r.return_code)).encode())
