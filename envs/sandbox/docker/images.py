"""Which Docker image a task runs in: `image_for(task)`.

The published SWE datasets each name their images their own way. In order, the first rule that
applies wins:

1. an explicit ``image`` column (``task.extra["image"]``) overrides everything;
2. a column the dataset publishes with the image's name: ``image_name`` (SWE-smith rows; a name
   without a namespace gets SWE-smith's, `SWESMITH_NAMESPACE`) or ``docker_image`` (R2E-Gym,
   SWE-rebench);
3. the task's dataset (``task.extra["dataset"]``, set by the loaders of `swerepair.envs.sources`;
   any spelling: ``"SWE-Gym/SWE-Gym"``, ``"swe_gym"``, ...):

   - SWE-bench: ``swebench/sweb.eval.x86_64.<instance_id, "__" written "_1776_">:latest``;
   - SWE-Gym: ``xingyaoww/sweb.eval.x86_64.<instance_id, "__" written "_s_">:latest`` (the
     images OpenHands and SWE-Gym publish);
   - SWE-smith: one image per repository and commit,
     ``jyangballin/swesmith.x86_64.<owner>_1776_<name>.<commit8>:latest``, read from the instance
     id ``<owner>__<name>.<commit8>.<bug>``;
   - R2E-Gym: only its ``docker_image`` column (rule 2); a row without one is an error;

   all lowercased, as Docker wants;
4. without a dataset, the instance id's shape: ``<owner>__<name>.<commit8>.<bug>`` is SWE-smith;
   ``<owner>__<name>-<number>`` is SWE-Gym when the repository is one of SWE-Gym's
   (`SWEGYM_REPOSITORIES`), else SWE-bench. A task with a local repository (``repo_source``) and
   no dataset is a local task: its shape says nothing, and it gets `image_for`'s `default`.

When no rule applies, `image_for` returns `default` if one is given, and otherwise raises
`NoImageError` naming the task.
"""

from __future__ import annotations

import re

from swerepair.core import Task

__all__ = [
    "DATASETS",
    "SWEGYM_REPOSITORIES",
    "SWESMITH_NAMESPACE",
    "NoImageError",
    "dataset_of",
    "image_for",
    "image_for_task",
    "normalize_image",
    "swebench_image",
    "swegym_image",
    "swesmith_image",
]

#: The datasets `image_for` knows, by the name `dataset_of` gives them.
DATASETS = ("swe-bench", "swe-gym", "swe-smith", "r2e-gym")

#: The Docker Hub namespace of SWE-smith's images as its published rows name them (newer
#: SWE-smith releases push to ``swebench/``: their rows carry that in ``image_name``).
SWESMITH_NAMESPACE = "jyangballin"

#: The repositories of SWE-Gym (none is in SWE-bench's test set), lowercased ``owner/name``.
SWEGYM_REPOSITORIES = frozenset(
    {
        "getmoto/moto",
        "python/mypy",
        "pydantic/pydantic",
        "pandas-dev/pandas",
        "dask/dask",
        "iterative/dvc",
        "conan-io/conan",
        "facebookresearch/hydra",
        "bokeh/bokeh",
        "modin-project/modin",
        "project-monai/monai",
    }
)

_SWESMITH_ID = re.compile(r"^(?P<owner>[^/\s]+?)__(?P<name>[^/\s.]+)\.(?P<commit>[0-9a-fA-F]{8})\.\S+$")
_SWEBENCH_ID = re.compile(r"^(?P<owner>[^/\s]+?)__(?P<name>[^/\s]+)-(?P<number>\d+)$")


class NoImageError(ValueError):
    """No rule of `image_for` gives an image for a task (and no default was given)."""


def _dataset_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def dataset_of(task: Task) -> str | None:
    """The dataset a task's ``extra["dataset"]`` names, as one of `DATASETS`; ``None`` when it
    names none; the name itself (stripped) when it is some other dataset.

    >>> t = lambda d: Task("x__y-1", "x/y", "c", "", "", "", (), (), extra={"dataset": d})
    >>> [dataset_of(t(d)) for d in ("princeton-nlp/SWE-bench_Verified", "SWE-Gym/SWE-Gym-Lite",
    ...  "SWE-bench/SWE-smith", "R2E-Gym/R2E-Gym-Subset", "swe_gym", "bundled")]
    ['swe-bench', 'swe-gym', 'swe-smith', 'r2e-gym', 'swe-gym', 'bundled']
    """
    raw = task.extra.get("dataset")
    if not isinstance(raw, str) or not raw.strip():
        return None
    key = _dataset_key(raw)
    # SWE-smith's Hugging Face name is "SWE-bench/SWE-smith": look for the narrower names first
    for needle, name in (("smith", "swe-smith"), ("r2e", "r2e-gym"), ("swegym", "swe-gym"), ("swebench", "swe-bench")):
        if needle in key:
            return name
    return raw.strip()


def _docker_name(name: str) -> str:
    return name.lower()


def swebench_image(instance_id: str) -> str:
    """SWE-bench's image of an instance (Docker names allow no ``__``: it is written ``_1776_``).

    >>> swebench_image("django__django-11099")
    'swebench/sweb.eval.x86_64.django_1776_django-11099:latest'
    >>> swebench_image("astropy__astropy-12907")
    'swebench/sweb.eval.x86_64.astropy_1776_astropy-12907:latest'
    """
    return _docker_name(f"swebench/sweb.eval.x86_64.{instance_id.replace('__', '_1776_')}:latest")


def swegym_image(instance_id: str) -> str:
    """SWE-Gym's image of an instance (``__`` written ``_s_``, lowercased).

    >>> swegym_image("Project-MONAI__MONAI-6975")
    'xingyaoww/sweb.eval.x86_64.project-monai_s_monai-6975:latest'
    >>> swegym_image("getmoto__moto-5406")
    'xingyaoww/sweb.eval.x86_64.getmoto_s_moto-5406:latest'
    """
    return _docker_name(f"xingyaoww/sweb.eval.x86_64.{instance_id.replace('__', '_s_')}:latest")


def swesmith_image(owner: str, name: str, commit: str, namespace: str = SWESMITH_NAMESPACE) -> str:
    """SWE-smith's image of a repository at a commit (one image for all its bugs).

    >>> swesmith_image("pallets", "flask", "bc098406af9537aacc436cb2ea777fbc9ff4c5aa")
    'jyangballin/swesmith.x86_64.pallets_1776_flask.bc098406:latest'
    >>> swesmith_image("Knio", "dominate", "9082227E93F5A9")
    'jyangballin/swesmith.x86_64.knio_1776_dominate.9082227e:latest'
    """
    return _docker_name(f"{namespace}/swesmith.x86_64.{owner}_1776_{name}.{commit[:8]}:latest")


def _column(task: Task, name: str) -> str | None:
    value = task.extra.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _from_columns(task: Task) -> str | None:
    image_name = _column(task, "image_name")
    if image_name is not None:
        # SWE-smith rows name the image with or without its Docker Hub namespace
        if "/" not in image_name.split(":", 1)[0] and image_name.startswith("swesmith."):
            image_name = f"{SWESMITH_NAMESPACE}/{image_name}"
        return image_name
    return _column(task, "docker_image")


def _swesmith_from_id(task: Task) -> str | None:
    m = _SWESMITH_ID.match(task.instance_id)
    return swesmith_image(m["owner"], m["name"], m["commit"]) if m else None


def image_for(task: Task, *, default: str | None = None) -> str:
    """The Docker image `task` runs in (see the module docstring for the rules, in order).

    An explicit ``image`` column overrides everything:

    >>> def task(iid, repo="o/n", source=None, **extra):
    ...     return Task(iid, repo, "c0ffee", "", "", "", (), (), repo_source=source, extra=extra)
    >>> image_for(task("django__django-11099", image="registry.local/mine:v1", dataset="SWE-bench"))
    'registry.local/mine:v1'

    SWE-bench (by its dataset, or by the id's shape):

    >>> image_for(task("django__django-11099", "django/django", dataset="princeton-nlp/SWE-bench_Verified"))
    'swebench/sweb.eval.x86_64.django_1776_django-11099:latest'
    >>> image_for(task("sympy__sympy-20590", "sympy/sympy"))
    'swebench/sweb.eval.x86_64.sympy_1776_sympy-20590:latest'

    SWE-Gym (by its dataset, or by its repositories):

    >>> image_for(task("Project-MONAI__MONAI-6975", "Project-MONAI/MONAI", dataset="SWE-Gym/SWE-Gym"))
    'xingyaoww/sweb.eval.x86_64.project-monai_s_monai-6975:latest'
    >>> image_for(task("python__mypy-15413", "python/mypy"))
    'xingyaoww/sweb.eval.x86_64.python_s_mypy-15413:latest'

    SWE-smith: the row's ``image_name``, else the repository and commit in the instance id:

    >>> smith_id = "pallets__flask.bc098406.func_basic__abc1"
    >>> image_for(task(smith_id, dataset="SWE-bench/SWE-smith",
    ...                image_name="jyangballin/swesmith.x86_64.pallets_1776_flask.bc098406"))
    'jyangballin/swesmith.x86_64.pallets_1776_flask.bc098406'
    >>> image_for(task(smith_id, image_name="swesmith.x86_64.pallets_1776_flask.bc098406"))
    'jyangballin/swesmith.x86_64.pallets_1776_flask.bc098406'
    >>> image_for(task("Knio__dominate.9b7b1b6b.lm_rewrite__x", dataset="swe-smith"))
    'jyangballin/swesmith.x86_64.knio_1776_dominate.9b7b1b6b:latest'

    R2E-Gym: its ``docker_image`` column:

    >>> image_for(task("r2e-sympy-1", "sympy", dataset="R2E-Gym/R2E-Gym-Subset",
    ...                docker_image="namanjain12/sympy_final:cafe1234"))
    'namanjain12/sympy_final:cafe1234'

    No rule: a clear error naming the task, or the default:

    >>> image_for(task("r2e-sympy-1", "sympy", dataset="R2E-Gym/R2E-Gym-Subset"))
    Traceback (most recent call last):
    ...
    swerepair.envs.sandbox.docker.images.NoImageError: task r2e-sympy-1 (dataset R2E-Gym/R2E-Gym-Subset): an R2E-Gym ...
    >>> image_for(task("swerepair__intervals-1", "swerepair/intervals", source="/repos/intervals"))
    Traceback (most recent call last):
    ...
    swerepair.envs.sandbox.docker.images.NoImageError: task swerepair__intervals-1: no image rule applies ...
    >>> image_for(task("swerepair__intervals-1", source="/repos/intervals"), default="swerepair-dev-base:bookworm")
    'swerepair-dev-base:bookworm'
    """
    explicit = _column(task, "image")
    if explicit is not None:
        return explicit
    published = _from_columns(task)
    if published is not None:
        return published
    dataset = dataset_of(task)
    raw_dataset = task.extra.get("dataset")
    where = f"task {task.instance_id}" + (f" (dataset {raw_dataset})" if dataset is not None else "")
    image: str | None = None
    why = ""
    if dataset == "swe-bench":
        image = swebench_image(task.instance_id)
    elif dataset == "swe-gym":
        image = swegym_image(task.instance_id)
    elif dataset == "swe-smith":
        image = _swesmith_from_id(task)
        why = "a SWE-smith instance id is <owner>__<name>.<commit8>.<bug>, or the row names its 'image_name'"
    elif dataset == "r2e-gym":
        why = "an R2E-Gym row must name its image in a 'docker_image' column"
    elif dataset is not None:
        known = ", ".join(DATASETS)
        why = f"no image rule for the dataset {dataset!r} (known: {known}); give each row an 'image' column"
    elif task.repo_source is not None:
        why = "no image rule applies (a local task: give it an 'image' column, or a default image)"
    else:
        image = _swesmith_from_id(task)
        if image is None and _SWEBENCH_ID.match(task.instance_id):
            gym = task.repo.lower() in SWEGYM_REPOSITORIES
            image = swegym_image(task.instance_id) if gym else swebench_image(task.instance_id)
        why = "no image rule applies: no 'image' column, no dataset, and the instance id has no known shape"
    if image is not None:
        return image
    if default is not None:
        return default
    raise NoImageError(f"{where}: {why}" + (f" (repo {task.repo!r})" if dataset is None else ""))


def image_for_task(task: Task) -> str | None:
    """`image_for` without a default: ``None`` (not an error) when no rule applies, for callers
    that have a fallback of their own (`DockerSandbox.for_task`: ``$SWEREPAIR_DOCKER_IMAGE``).

    >>> image_for_task(Task("swerepair__intervals-1", "swerepair/intervals", "c", "", "", "", (), (),
    ...                     repo_source="/repos/intervals")) is None
    True
    """
    try:
        return image_for(task)
    except NoImageError:
        return None


def normalize_image(ref: str) -> str:
    """The name Docker resolves `ref` to, for comparing names: ``:latest`` added where no tag or
    digest is given (``docker.io/library/`` is left as written).

    >>> normalize_image("jyangballin/swesmith.x86_64.pallets_1776_flask.bc098406")
    'jyangballin/swesmith.x86_64.pallets_1776_flask.bc098406:latest'
    >>> normalize_image("localhost:5000/img"), normalize_image("img:v1"), normalize_image("img@sha256:ab")
    ('localhost:5000/img:latest', 'img:v1', 'img@sha256:ab')
    """
    if "@" in ref:
        return ref
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last else f"{ref}:latest"
