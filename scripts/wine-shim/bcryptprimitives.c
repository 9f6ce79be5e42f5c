/*
 * Test scaffolding only, never shipped with udpcat.
 *
 * Rust's std (1.78 and later) on Windows imports ProcessPrng from bcryptprimitives.dll and
 * calls it at start-up (HashMap's RandomState). Debian 12's wine 8 has no such DLL, so every
 * Rust .exe dies in the loader with c0000135. This stand-in, placed next to the .exe, exports
 * ProcessPrng and forwards to advapi32's SystemFunction036 (RtlGenRandom), which wine has.
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -s -o bcryptprimitives.dll bcryptprimitives.c \
 *            bcryptprimitives.def -ladvapi32   (scripts/wine-env does this)
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length); /* RtlGenRandom, advapi32 */

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {                        /* RtlGenRandom takes a ULONG length */
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;                             /* the real ProcessPrng always returns TRUE */
}
