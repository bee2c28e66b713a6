"""A process pool for face work (prepare, the calibration tool): dlib loaded once per worker."""
from __future__ import annotations

from multiprocessing import get_context


def worker_pool(workers: int, preload: tuple[str, ...] = ("gan_anim.faces.detect",)):
    """A pool of ``workers`` processes with dlib's detector and landmark models loaded.

    Workers fork from a clean forkserver (not from this process, whose OpenCV/OpenMP
    threads would deadlock a plain fork); ``preload`` names the modules it imports first.
    """
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload(list(preload))
    return ctx.Pool(workers, initializer=init_worker)


def init_worker() -> None:
    """One thread per worker for OpenCV; dlib's models loaded now, not on the first photo."""
    import cv2

    from ..faces.dlib_models import load_models

    cv2.setNumThreads(1)
    load_models("hog", "landmarks")
