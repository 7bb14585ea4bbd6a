import torch
import torch.nn.functional as F


def loss_fn(student_logits, teacher_logits):
    temperature = 2.0
    student = F.log_softmax(student_logits / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = F.kl_div(student, teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2
