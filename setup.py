"""Packaging for elf-s2t-nb: every field comes from `settings.ini` (nbdev 2 layout)."""
from configparser import ConfigParser
from pathlib import Path
import setuptools

assert Path("settings.ini").exists(), "run setup.py from the repository root, next to settings.ini"
config = ConfigParser(delimiters=["="])
config.read("settings.ini", encoding="utf-8")
cfg = config["DEFAULT"]

for key in "version description keywords author author_email min_python license status audience language".split():
    assert key in cfg, f"settings.ini is missing '{key}'"

licenses = {"apache2": ("Apache Software License 2.0", "OSI Approved :: Apache Software License"),
            "mit": ("MIT License", "OSI Approved :: MIT License")}
statuses = ["1 - Planning", "2 - Pre-Alpha", "3 - Alpha", "4 - Beta", "5 - Production/Stable", "6 - Mature", "7 - Inactive"]
py_versions = "3.10 3.11 3.12 3.13".split()

def reqs(key): return cfg.get(key, "").split()

lic = licenses.get(cfg["license"].lower(), (cfg["license"], None))
min_python = cfg["min_python"]
offline, dev, paper = reqs("offline_requirements"), reqs("dev_requirements"), reqs("paper_requirements")

setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    description=cfg["description"],
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    author=cfg["author"], author_email=cfg["author_email"],
    license=lic[0], url=cfg["git_url"],
    keywords=cfg["keywords"],
    classifiers=[
        "Development Status :: " + statuses[int(cfg["status"]) - 1],
        "Intended Audience :: " + cfg["audience"].title(),
        "Natural Language :: " + cfg["language"].title(),
    ] + ["Programming Language :: Python :: " + v for v in py_versions[py_versions.index(min_python):]]
      + (["License :: " + lic[1]] if lic[1] else []),
    packages=setuptools.find_packages(include=[cfg["lib_path"], cfg["lib_path"] + ".*"]),
    include_package_data=True,
    package_data={cfg["lib_path"]: ["data/*", "shipped/**/*"]},   # the corpus and the shipped models (models.py)
    python_requires=">=" + min_python,
    install_requires=reqs("requirements"),
    extras_require={"offline": offline, "paper": paper, "dev": offline + paper + dev},
    entry_points={"console_scripts": reqs("console_scripts"), "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    zip_safe=False,
)
