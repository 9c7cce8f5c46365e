namespace Hypervisor.Tests.Guests;

/// <summary>
/// A small numeric kernel in C for issue 7's "compiled floating-point code" check. The same source is built twice by
/// the test: freestanding (-DHOSTED undefined) into a flat 64-bit image linked at <see cref="LoadAddress"/>, printing
/// through COM1 with its own formatting code, and hosted (-DHOSTED) as a host process printing to stdout. Both print
/// exactly the same bytes when the CPU's floating point is right. It only uses operations whose results IEEE 754
/// fixes (no transcendental library calls, no long double, no x87).
/// </summary>
internal static class NumericKernel
{
    /// <summary>Where the firmware copies the flat image and calls it (inside the identity-mapped first 2 MiB).</summary>
    public const uint LoadAddress = 0x10_0000;

    /// <summary>The last line the kernel prints.</summary>
    public const string EndLine = "end of numeric kernel\r\n";

    public const string LinkerScript = """
        ENTRY(_start)
        SECTIONS
        {
          . = 0x100000;
          .all : { *(.text.start) *(.text*) *(.rodata*) *(.data*) *(.bss*) *(COMMON) }
          /DISCARD/ : { *(.comment) *(.note*) *(.eh_frame*) }
        }
        """;

    public const string Source = """
        typedef unsigned long u64;
        typedef long i64;
        typedef unsigned int u32;
        typedef int i32;
        typedef short i16;
        typedef signed char i8;
        typedef unsigned char u8;

        #ifdef HOSTED
        #include <stdio.h>
        static void out(char c) { putchar(c); }
        #else
        /* Start-up: the firmware calls _start with RSP % 16 == 8 after the call, as for any function. */
        __asm__(".section .text.start,\"ax\"\n"
                ".globl _start\n"
                "_start:\n"
                "  sub $8, %rsp\n"
                "  call kmain\n"
                "  add $8, %rsp\n"
                "  ret\n"
                ".text\n");

        static inline void outb(unsigned short port, unsigned char v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
        static inline unsigned char inb(unsigned short port) { unsigned char v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
        static void out(char c) { while (!(inb(0x3FD) & 0x20)) { } outb(0x3F8, (unsigned char)c); }

        /* gcc may call these even when freestanding. */
        void *memset(void *d, int c, u64 n) { u8 *p = d; while (n--) *p++ = (u8)c; return d; }
        void *memcpy(void *d, const void *s, u64 n) { u8 *p = d; const u8 *q = s; while (n--) *p++ = *q++; return d; }
        void *memmove(void *d, const void *s, u64 n) { u8 *p = d; const u8 *q = s; if (p < q) { while (n--) *p++ = *q++; } else { p += n; q += n; while (n--) *--p = *--q; } return d; }
        int memcmp(const void *a, const void *b, u64 n) { const u8 *p = a, *q = b; for (; n; n--, p++, q++) if (*p != *q) return *p - *q; return 0; }
        #endif

        static void puts_(const char *s) { while (*s) out(*s++); }
        static void nl(void) { out('\r'); out('\n'); }

        static void put_hex(u64 v, int digits)
        {
            for (int i = digits - 1; i >= 0; i--) out("0123456789abcdef"[(v >> (4 * i)) & 15]);
        }

        static void put_u64(u64 v)
        {
            char buf[24]; int n = 0;
            do { buf[n++] = (char)('0' + v % 10); v /= 10; } while (v);
            while (n) out(buf[--n]);
        }

        static void put_i64(i64 v) { if (v < 0) { out('-'); put_u64(0 - (u64)v); } else put_u64((u64)v); }

        static u64 bits_d(double d) { union { double d; u64 u; } x; x.d = d; return x.u; }
        static u32 bits_f(float f) { union { float f; u32 u; } x; x.f = f; return x.u; }

        /* Decimal rendering done with double arithmetic itself: 17 significant digits and an exponent. */
        static void put_double(double d)
        {
            u64 b = bits_d(d);
            if (b >> 63) { out('-'); d = -d; }
            if (d != d) { puts_("nan"); }
            else if (d == 1.0 / 0.0) { puts_("inf"); }
            else if (d == 0.0) { puts_("0"); }
            else
            {
                int e = 0;
                while (d >= 10.0) { d /= 10.0; e++; }
                while (d < 1.0) { d *= 10.0; e--; }
                for (int i = 0; i < 17; i++)
                {
                    int digit = (int)d;
                    if (digit > 9) digit = 9;
                    out((char)('0' + digit));
                    if (i == 0) out('.');
                    d = (d - digit) * 10.0;
                }
                out('e'); put_i64(e);
            }
            puts_(" [");
            put_hex(b, 16);
            out(']');
        }

        static void put_float(float f) { put_double((double)f); puts_(" {"); put_hex(bits_f(f), 8); out('}'); }

        static void label(const char *s) { puts_(s); puts_(": "); }

        static u64 hash;
        static void mix(u64 v) { hash = (hash ^ v) * 0x100000001b3UL; }

        #define N 64
        static i32 ia[N], ib[N], ic[N], ir[N];
        static u32 ua[N], ub[N], ur[N];
        static i8 ba[N], br[N];
        static i16 sa[N];
        static i64 la[N], lb[N], lr[N];
        static double da[N], db[N], dr[N];
        static float fa[N], fb[N], fr[N];
        static double m1[8][8], m2[8][8], m3[8][8];

        /* volatile: keep the compiler from folding these at build time, so the CPU computes them. */
        static volatile double vd[] = { 2.0, 3.0, 0.1, 1e308, 4.9e-324, 2.2250738585072014e-308, -0.0, 1e-310, 123456789.987654321, -7.5 };
        static volatile float vf[] = { 2.0f, 3.0f, 0.1f, 3.4e38f, 1.4e-45f, 1.17549435e-38f, -0.0f, 16777217.0f, -2.5f, 0.3333333f };
        static volatile i64 vl[] = { 0, 1, -1, 9007199254740993L, -9223372036854775807L - 1, 123456789012345L };
        static volatile u64 vu[] = { 0, 18446744073709551615UL, 9223372036854775808UL, 9007199254740993UL };

        static void scalar_tests(void)
        {
            for (int i = 0; i < 10; i++)
            {
                double x = vd[i];
                label("sqrt"); put_double(__builtin_sqrt(x < 0 ? -x : x)); nl();
                label("div3"); put_double(x / 3.0); nl();
                label("mul7"); put_double(x * 7.0); nl();
                label("recip"); put_double(1.0 / x); nl();
                label("floor"); put_double(__builtin_floor(x)); nl();
                label("ceil"); put_double(__builtin_ceil(x)); nl();
                label("trunc"); put_double(__builtin_trunc(x)); nl();
                label("to float"); put_float((float)x); nl();
                label("to i64"); put_i64((x > -9e18 && x < 9e18) ? (i64)x : 0); nl();
                label("to i32"); put_i64((x > -2e9 && x < 2e9) ? (i32)x : 0); nl();
            }

            for (int i = 0; i < 10; i++)
            {
                float f = vf[i];
                label("sqrtf"); put_float(__builtin_sqrtf(f < 0 ? -f : f)); nl();
                label("fdiv3"); put_float(f / 3.0f); nl();
                label("fmix"); put_double(f * 0.1 + (double)(f / 7.0f)); nl();
                label("floorf"); put_float(__builtin_floorf(f)); nl();
                label("to double"); put_double((double)f); nl();
                label("f to i32"); put_i64((f > -2e9f && f < 2e9f) ? (i32)f : 0); nl();
            }

            for (int i = 0; i < 6; i++)
            {
                i64 v = vl[i];
                label("i64 to double"); put_double((double)v); nl();
                label("i64 to float"); put_float((float)v); nl();
                label("i32 to float"); put_float((float)(i32)v); nl();
            }

            for (int i = 0; i < 4; i++)
            {
                u64 v = vu[i];
                label("u64 to double"); put_double((double)v); nl();
                label("u64 to float"); put_float((float)v); nl();
                double d = (double)v * 0.75;
                label("double to u64"); put_u64(d < 1.8e19 ? (u64)d : 0); nl();
            }
        }

        static void vector_tests(void)
        {
            for (int i = 0; i < N; i++)
            {
                ia[i] = (i32)(i * 2654435761u) >> 3;
                ib[i] = (i32)((i + 17) * 40503u) - 1000000;
                ic[i] = i * 3 - 90;
                ua[i] = (u32)ia[i];
                ub[i] = (u32)ib[i] * 7u;
                ba[i] = (i8)(i * 37 - 128);
                sa[i] = (i16)(i * 1021 - 30000);
                la[i] = ((i64)ia[i] << 20) ^ i;
                lb[i] = ((i64)ib[i] << 19) + 5;
                da[i] = (double)vd[i % 4 == 3 ? 0 : i % 4] * (i + 1) / 7.0;
                db[i] = 1.0 / (i + 3);
                fa[i] = (float)ia[i] * 0.001f;
                fb[i] = (float)(i - 32) / 3.0f;
            }

            hash = 0xcbf29ce484222325UL;
            for (int i = 0; i < N; i++) ir[i] = ia[i] * ib[i] + ic[i];
            for (int i = 0; i < N; i++) mix((u32)ir[i]);
            label("pmulld"); put_hex(hash, 16); nl();

            hash = 0xcbf29ce484222325UL;
            for (int i = 0; i < N; i++) ir[i] = ia[i] < ib[i] ? ia[i] : ib[i];
            for (int i = 0; i < N; i++) mix((u32)ir[i]);
            for (int i = 0; i < N; i++) ir[i] = ia[i] > ic[i] ? ia[i] : ic[i];
            for (int i = 0; i < N; i++) mix((u32)ir[i]);
            for (int i = 0; i < N; i++) ur[i] = ua[i] < ub[i] ? ua[i] : ub[i];
            for (int i = 0; i < N; i++) mix(ur[i]);
            label("min/max"); put_hex(hash, 16); nl();

            hash = 0xcbf29ce484222325UL;
            for (int i = 0; i < N; i++) br[i] = (i8)(ba[i] < 0 ? -ba[i] : ba[i]);
            for (int i = 0; i < N; i++) mix((u8)br[i]);
            for (int i = 0; i < N; i++) ir[i] = sa[i];
            for (int i = 0; i < N; i++) mix((u32)ir[i]);
            label("abs/extend"); put_hex(hash, 16); nl();

            hash = 0xcbf29ce484222325UL;
            for (int i = 0; i < N; i++) lr[i] = la[i] > lb[i] ? la[i] : lb[i];
            for (int i = 0; i < N; i++) mix((u64)lr[i]);
            label("i64 max"); put_hex(hash, 16); nl();

            i32 isum = 0;
            for (int i = 0; i < N; i++) isum += ia[i] ^ ib[i];
            label("i32 sum"); put_i64(isum); nl();

            for (int i = 0; i < N; i++) dr[i] = 2.5 * da[i] + db[i];
            double dsum = 0;
            for (int i = 0; i < N; i++) dsum += dr[i];
            label("daxpy sum"); put_double(dsum); nl();

            for (int i = 0; i < N; i++) fr[i] = (float)ia[i] * 0.5f - fb[i];
            float fsum = 0;
            for (int i = 0; i < N; i++) fsum += fr[i];
            label("cvtdq2ps sum"); put_float(fsum); nl();

            for (int i = 0; i < N; i++) fr[i] = fa[i] > fb[i] ? fa[i] : fb[i];
            hash = 0xcbf29ce484222325UL;
            for (int i = 0; i < N; i++) mix(bits_f(fr[i]));
            label("float max"); put_hex(hash, 16); nl();

            for (int i = 0; i < N; i++) dr[i] = __builtin_sqrt(db[i]) / (da[i] + 1.0);
            hash = 0xcbf29ce484222325UL;
            for (int i = 0; i < N; i++) mix(bits_d(dr[i]));
            label("sqrt/div"); put_hex(hash, 16); nl();

            for (int i = 0; i < N; i++) fr[i] = (float)da[i] + (float)(db[i] * 3.0);
            hash = 0xcbf29ce484222325UL;
            for (int i = 0; i < N; i++) mix(bits_f(fr[i]));
            label("float/double mix"); put_hex(hash, 16); nl();

            for (int i = 0; i < N; i++) dr[i] = __builtin_floor(da[i] * 3.7) + __builtin_ceil(db[i] * 100.0);
            hash = 0xcbf29ce484222325UL;
            for (int i = 0; i < N; i++) mix(bits_d(dr[i]));
            label("floor/ceil"); put_hex(hash, 16); nl();
        }

        static void matrix_and_iterations(void)
        {
            for (int i = 0; i < 8; i++)
                for (int j = 0; j < 8; j++)
                {
                    m1[i][j] = (double)(i + 1) / (j + 2);
                    m2[i][j] = (double)(i * 8 + j) * 0.125 - 3.0;
                }
            for (int i = 0; i < 8; i++)
                for (int j = 0; j < 8; j++)
                {
                    double s = 0;
                    for (int k = 0; k < 8; k++) s += m1[i][k] * m2[k][j];
                    m3[i][j] = s;
                }
            hash = 0xcbf29ce484222325UL;
            for (int i = 0; i < 8; i++)
                for (int j = 0; j < 8; j++) mix(bits_d(m3[i][j]));
            label("matmul"); put_hex(hash, 16); nl();
            label("m3[7][7]"); put_double(m3[7][7]); nl();

            /* Newton's method for the square root of 2 and a Horner polynomial (e^x by Taylor terms). */
            double x = 1.0;
            for (int i = 0; i < 6; i++) { x = 0.5 * (x + 2.0 / x); }
            label("newton sqrt2"); put_double(x); nl();
            double p = 1.0, t = 0.5;
            for (int k = 20; k >= 1; k--) p = 1.0 + p * t / k;
            label("exp(0.5)"); put_double(p); nl();
            float pf = 1.0f;
            for (int k = 12; k >= 1; k--) pf = 1.0f + pf * 0.5f / (float)k;
            label("expf(0.5)"); put_float(pf); nl();

            /* Harmonic sums forwards and backwards differ in the last bits. */
            double h1 = 0, h2 = 0;
            for (int k = 1; k <= 1000; k++) h1 += 1.0 / k;
            for (int k = 1000; k >= 1; k--) h2 += 1.0 / k;
            label("harmonic up"); put_double(h1); nl();
            label("harmonic down"); put_double(h2); nl();
        }

        int kmain(void)
        {
            puts_("numeric kernel"); nl();
            scalar_tests();
            vector_tests();
            matrix_and_iterations();
            puts_("end of numeric kernel"); nl();
            return 0;
        }

        #ifdef HOSTED
        int main(void) { kmain(); fflush(stdout); return 0; }
        #endif
        """;
}
