"""data/ holds two pipelines, prepare and stream, that share only the modules at data/'s root."""

from __future__ import annotations

from tests.test_layout import import_graph


def test_prepare_and_stream_never_import_each_other():
    apart = {"adaptcli.data.prepare": "adaptcli.data.stream", "adaptcli.data.stream": "adaptcli.data.prepare"}
    wrong = sorted(f"{module} -> {target}" for module, targets in import_graph().items()
                   for side, other in apart.items() if module.startswith(side)
                   for target in targets if target.startswith(other))
    assert not wrong, "the shared pieces belong in adaptcli/data/ itself:\n" + "\n".join(wrong)


def test_the_shared_modules_import_neither_pipeline():
    graph = import_graph()
    pipelines = ("adaptcli.data.prepare", "adaptcli.data.stream")
    shared = [m for m in graph if m.startswith("adaptcli.data.") and m.count(".") == 2 and m not in pipelines]
    assert {"adaptcli.data.manifest", "adaptcli.data.names", "adaptcli.data.config"} <= set(shared)
    wrong = sorted(f"{m} -> {t}" for m in shared for t in graph[m]
                   if t.startswith(pipelines))
    assert not wrong, "\n".join(wrong)
