"""gan-anim: GANimation for real photos and videos.

    import gan_anim
    gan_anim.animate("photo.jpg", "smile.gif", to="happy", frames=30)
"""
from .animate import Animator, animate  # the function shadows the submodule name on the package
from .aus import AU_NAMES, PRESETS
from .errors import GanAnimError
from .estimator import estimate_aus, estimate_from_landmarks
from .faces import Face, detect_faces
from .media import read_image
from .model import Critic, Generator, ModelConfig, load_generator
from .video import animate_video

__all__ = ["AU_NAMES", "PRESETS", "GanAnimError", "Face", "detect_faces", "read_image",
           "Critic", "Generator", "ModelConfig", "load_generator"]
__all__ += ["estimate_aus", "estimate_from_landmarks"]
__all__ += ["animate_video", "animate", "Animator"]
