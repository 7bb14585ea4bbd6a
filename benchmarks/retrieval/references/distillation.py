import torch.nn.functional as F


def loss_fn(student_logits, teacher_logits):
    log_student = F.log_softmax(student_logits / 4, dim=1)
    teacher = F.softmax(teacher_logits / 4, dim=1)
    return F.kl_div(log_student, teacher, reduction="batchmean") * 16
