import os

from setuptools import find_packages, setup


def _assets():
    root = os.path.join("igpo_jax", "assets")
    return [os.path.relpath(os.path.join(d, f), "igpo_jax")
            for d, _, files in os.walk(root) for f in files]

setup(
    name="igpo_jax",
    version="0.1.0",
    description="IGPO (Inpainting-Guided Policy Optimization) for masked diffusion LLMs in JAX/Flax",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["igpo_jax", "igpo_jax.*"]),
    package_data={"igpo_jax": _assets()},
    install_requires=[
        "jax>=0.10",  # tested: 0.10.2 (Python 3.11) and the newest release on Python 3.12
        "flax>=0.12",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11",
        "grain>=0.2.10",
        "sentencepiece>=0.2",
        "ml-collections>=1.0",
        "absl-py>=2.1",
        "safetensors>=0.4",
        "ml_dtypes>=0.5",
        "numpy>=1.26",
        "math-verify>=0.7",
        "etils[epath]>=1.7",  # local and cloud paths (already required by Orbax)
    ],
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6", "tokenizers>=0.20", "matplotlib>=3.8",
                 "tensorflow-datasets>=4.9", "array-record>=0.5", "importlib_resources",
                 "gcsfs>=2024.2", "gcp-storage-emulator>=2024.1", "nbclient>=0.10",
                 "nbformat>=5.9", "ipykernel>=6.29", "wandb>=0.19", "pytest-xdist>=3.5"],
        "gcs": ["gcsfs>=2024.2"],  # gs:// workdirs, init_from, data and exports
        "tfds": ["tensorflow-datasets>=4.9", "array-record>=0.5", "importlib_resources"],
        "hf": ["tokenizers>=0.20"],
        "plot": ["matplotlib>=3.8"],
        "tensorboard": ["tensorboardX>=2.6"],
        "wandb": ["wandb>=0.19"],  # metrics.wandb=True (offline by default)
    },
)
