"""Everything about the kernel that is not a stage: its config and the live CD's
requirements (:mod:`kconfig`), the Kconfig graph (:mod:`kconfig_deps`), fixing a config
(:mod:`kernelfix`), running kbuild (:mod:`kbuild`), module closure (:mod:`kmod`) and
matching modules to a kernel (:mod:`modmatch`)."""
