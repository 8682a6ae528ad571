# Thread count shared by every compiled module (cimported from here).
cdef int get_num_threads() noexcept nogil
