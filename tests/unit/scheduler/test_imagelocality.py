"""ImageLocality: kube's score for nodes that already hold the pod's images, with the expected
values worked out from kube's formula (size x nodes-with-image / all nodes, clamped to
[23 MB, 1000 MB x containers], scaled to 0-100 and truncated), and the node status images it
reads."""

from pocketkube.kubelet.nodestatus import node_images
from pocketkube.kubelet.runtime.interface import Image
from pocketkube.scheduler.framework import SKIP, CycleState, Framework
from pocketkube.scheduler.plugins import default_plugins
from pocketkube.scheduler.plugins.imagelocality import ImageLocality, normalized_image_name
from tests.unit.scheduler.util import cache_with, info, node, pod

MB = 1024 * 1024


def with_images(name, *images):
    n = node(name)
    n["status"]["images"] = [{"names": list(names), "sizeBytes": size} for names, size in images]
    return n


def scores(cache, p):
    plugin = ImageLocality()
    state = CycleState()
    pi = info(p)
    st = plugin.pre_score(state, pi, cache.node_list, cache)
    if st is not None:
        assert st.code == SKIP
        return None
    return {ni.name: s for ni, s in zip(cache.node_list,
                                         plugin.score_all(state, pi, cache.node_list), strict=True)}


def image_pod(*images, init=()):
    p = pod("p")
    p["spec"]["containers"] = [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]
    if init:
        p["spec"]["initContainers"] = [{"name": f"i{i}", "image": im}
                                       for i, im in enumerate(init)]
    return p


def test_one_image_on_one_of_three_nodes():
    # 500 MiB x 1/3 = 174762666 bytes; (174762666 - 23 MiB) * 100 // (1000 MiB - 23 MiB) = 14.
    cache = cache_with([with_images("n1", (["gcr.io/big:v1"], 500 * MB)), node("n2"),
                        node("n3")])
    assert scores(cache, image_pod("gcr.io/big:v1")) == {"n1": 14, "n2": 0, "n3": 0}


def test_spread_init_containers_and_per_container_ceiling():
    # Two containers: the ceiling is 2000 MiB. The app image (300 MiB, on both nodes: x 2/2)
    # counts for the init container; nginx (100 MiB on n1 only: x 1/2) for the other.
    # n1: 314572800 + 52428800 = 367001600 -> (367001600 - 23 MiB) * 100 // (2000 - 23 MiB) = 16
    # n2: 314572800 -> 14. n2's own size for the image (250 MiB) is not used: the first node
    # to report a name sets its size.
    cache = cache_with([
        with_images("n1", (["gcr.io/app@sha256:ab12", "gcr.io/app:1.0"], 300 * MB),
                    (["nginx:latest"], 100 * MB)),
        with_images("n2", (["gcr.io/app:1.0"], 250 * MB))])
    assert scores(cache, image_pod("nginx", init=["gcr.io/app:1.0"])) == {"n1": 16, "n2": 14}


def test_thresholds_and_nodes_leaving():
    cache = cache_with([with_images("n1", (["huge:1"], 2000 * MB), (["tiny:1"], 20 * MB)),
                        with_images("n2", (["huge:1"], 2000 * MB)),
                        with_images("n3", (["huge:1"], 800 * MB)), node("n4")])
    # Above 1000 MiB for one container: the full 100.
    assert scores(cache, image_pod("huge:1")) == {"n1": 100, "n2": 100, "n3": 100, "n4": 0}
    # Below 23 MiB: nothing.
    assert scores(cache, image_pod("tiny:1")) == {"n1": 0, "n2": 0, "n3": 0, "n4": 0}
    cache.remove_node("n1")
    cache.remove_node("n2")
    cache.add_node(with_images("n5", (["mid:1"], 800 * MB)))
    cache.add_node(with_images("n6", (["mid:1"], 800 * MB)))
    cache.add_node(with_images("n3", (["mid:1"], 800 * MB)))  # n3's images changed
    # 800 MiB on 3 of 4 nodes: 629145600 -> (629145600 - 23 MiB) * 100 // (1000 - 23 MiB) = 59
    assert scores(cache, image_pod("mid:1")) == {"n3": 59, "n4": 0, "n5": 59, "n6": 59}
    assert scores(cache, image_pod("huge:1")) is None  # no node has it any more
    assert set(cache.images) == {"mid:1"}


def test_names_are_matched_as_kube_normalizes_them():
    assert normalized_image_name("busybox") == "busybox:latest"
    assert normalized_image_name("localhost:5000/app") == "localhost:5000/app:latest"
    assert normalized_image_name("localhost:5000/app:v2") == "localhost:5000/app:v2"
    assert normalized_image_name("gcr.io/app@sha256:ab12") == "gcr.io/app@sha256:ab12"
    cache = cache_with([with_images("n1", (["docker.io/library/busybox:latest",
                                             "gcr.io/app@sha256:ab12"], 500 * MB)),
                        node("n2")])
    # No registry is added: "busybox" does not match the fully qualified name.
    assert scores(cache, image_pod("busybox")) is None
    # 500 MiB x 1/2 = 262144000 -> (262144000 - 23 MiB) * 100 // (1000 - 23 MiB) = 23
    expected = {"n1": 23, "n2": 0}
    assert scores(cache, image_pod("docker.io/library/busybox")) == expected
    assert scores(cache, image_pod("gcr.io/app@sha256:ab12")) == expected


def test_weight_one_in_the_default_profile():
    cache = cache_with([with_images("n1", (["gcr.io/big:v1"], 1000 * MB)), node("n2")])
    fw = Framework(default_plugins())
    assert fw.by_name["ImageLocality"].weight == 1
    pi = info(image_pod("gcr.io/big:v1"))
    state, _ = fw.run_pre_filter(pi, cache)
    totals = fw.prioritize(state, pi, cache.node_list, cache)
    without = fw.prioritize(state, info(image_pod("gcr.io/other:v1")), cache.node_list, cache)
    # 1000 MiB x 1/2 = 500 MiB -> (500 - 23) * 100 // 977 = 48, added once.
    assert [t - w for t, w in zip(totals, without, strict=True)] == [48, 0]


def test_node_status_images_feed_the_cache():
    def image(i, size, tags, digests):
        return Image(id=f"sha256:{i}", repo_tags=tags, repo_digests=digests, layers=[],
                     config={}, size=size)

    images = [image("a", 10, ["docker.io/library/small:1"], []),
              image("b", 300 * MB, [f"r/big:{t}" for t in range(5)], ["r/big@sha256:b"]),
              image("c", 10, ["docker.io/library/other:1"], ["docker.io/library/other@sha256:c"])]
    status = node_images(images, limit=2)
    # Largest first, ties by id descending; digests before tags; at most five names.
    assert status == [
        {"names": ["r/big@sha256:b", "r/big:0", "r/big:1", "r/big:2", "r/big:3"],
         "sizeBytes": 300 * MB},
        {"names": ["docker.io/library/other@sha256:c", "docker.io/library/other:1"],
         "sizeBytes": 10}]
    n = node("n1")
    n["status"]["images"] = status
    cache = cache_with([n])
    assert scores(cache, image_pod("r/big:3")) == {"n1": 28}  # (300 - 23) * 100 // 977
    assert scores(cache, image_pod("r/big:4")) is None  # the sixth name is not reported
