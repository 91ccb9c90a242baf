//! NVML on the virtual node: installed as `libnvidia-ml.so.1` (the same
//! library file), the GPUs' identity, sensors, counters and events as
//! NVIDIA's management library reports them. (Being written.)
