// The wrapper module that builds the test control plane (see _build.py).
// _build.py copies this file into a build folder outside the repository and
// appends one replace line per staging module, generated from the required
// k8s.io/kubernetes release's own go.mod. Nothing Go is built inside the repo.
module hourglass.dev/tests/controlplane

go 1.26.0
