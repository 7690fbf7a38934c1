"""Varifocal and distribution focal losses, per anchor and dense (positives are selected by weights)."""
import paddle.nn.functional as F


def varifocal_loss(logits, target_scores, onehot_labels, alpha=0.75, gamma=2.0, from_logits=True):
    """Sum of BCE(sigmoid(logits), target) weighted alpha * p^gamma on negatives and target on positives.
    Computed from logits: the same value as BCE on probabilities, without log(0). `from_logits=False`
    takes probabilities instead (PicoHeadV2's scores are a product of two sigmoids, not one)."""
    score = F.sigmoid(logits) if from_logits else logits
    weight = alpha * score.pow(gamma) * (1 - onehot_labels) + target_scores * onehot_labels
    if from_logits:
        bce = F.binary_cross_entropy_with_logits(logits, target_scores, reduction="none")
    else:
        bce = F.binary_cross_entropy(score, target_scores, reduction="none")
    return (bce * weight).sum()


def dfl_loss(logits, target):
    """Distribution focal loss: logits [..., 4, reg_max + 1] over distance bins, target [..., 4] real
    distances in [0, reg_max); cross entropy to the two bins around the target, weighted by nearness.
    -> [...] (mean over the 4 sides)."""
    bins = logits.shape[-1]
    left = target.floor()
    w_left = left + 1 - target
    logp = F.log_softmax(logits, axis=-1)
    soft = (F.one_hot(left.astype("int64"), bins) * w_left.unsqueeze(-1)
            + F.one_hot(left.astype("int64") + 1, bins) * (1 - w_left).unsqueeze(-1))
    return -(logp * soft).sum(axis=-1).mean(axis=-1)
