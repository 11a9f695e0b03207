// No #pragma once, on purpose: the closing half of conv_macros_begin.hpp.
#undef KHALO_UNROLL
#undef KHALO_KEEP_LOOP
