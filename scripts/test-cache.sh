# Sourced by the test scripts: TEST_CACHE, the machine's cache of what the tests install from
# outside this repository and never change (Node 24, the host CLI, the MariaDB template data dir).
# It is the user's, not the checkout's, so a clean clone finds them installed, as it finds the npm
# cache warm: a clone's own .node24/ cost about 9 CPU-s and 25 s per run to install again. Delete
# the folder to get the newest releases. Test helpers compute the same path (test/helpers/build-once.ts).
TEST_CACHE="${MOCTL_BR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moctl-br-test}"
