"""Self-checking exercises, one module per lesson (``build_dataset`` ... ``gradcam_explorer``) over the shared
machinery in ``core``: ``dl.exercises.lesson01.q1.check(answer)``, ``.hint()``, and, once a teacher has called
``dl.exercises.teacher_mode(True)`` (or set ``DETECTLIB_TEACHER=1``), ``.solution()`` and ``.measured()``. The
appendix (lesson 07) has no exercises."""

from __future__ import annotations

from .build_dataset import lesson01
from .core import Lesson, is_teacher, teacher_mode
from .generalisation import lesson05
from .gradcam_explorer import lesson06
from .measuring_a_detector import lesson04
from .train_clip_head import lesson03
from .train_convnext import lesson02

LESSONS: dict[str, Lesson] = {lesson.notebook: lesson
                              for lesson in (lesson01, lesson02, lesson03, lesson04, lesson05, lesson06)}

__all__ = ["LESSONS", "Lesson", "is_teacher", "lesson01", "lesson02", "lesson03", "lesson04", "lesson05", "lesson06",
           "teacher_mode"]
