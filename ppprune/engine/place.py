"""Device choice: `use_gpu` is a request, honoured only when this Paddle build can use a GPU.

Under `paddle.distributed.launch --gpus 0,1,...` each rank gets its own GPU (launch sets FLAGS_selected_gpus,
which `ParallelEnv().device_id` reads; 0 outside a launch)."""
import paddle


def get_place(use_gpu):
    if use_gpu:
        if not paddle.is_compiled_with_cuda():
            print("use_gpu=true, but this paddlepaddle build has no CUDA support: running on CPU (CPUPlace). "
                  "Install paddlepaddle-gpu for GPU training, or set use_gpu: false to silence this.")
        elif paddle.device.cuda.device_count() == 0:
            print("use_gpu=true, but no CUDA device is visible (check CUDA_VISIBLE_DEVICES / drivers): "
                  "running on CPU (CPUPlace).")
        else:
            return paddle.CUDAPlace(paddle.distributed.ParallelEnv().device_id)
    return paddle.CPUPlace()
