using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Benchmarks.Workloads;

/// <summary>
/// Integer workloads, each emitted from one source as 16-, 32- or 64-bit code (<see cref="GuestAsm"/>), each with an
/// independent C# computation of the checksum the guest must print.
/// </summary>
public static class ComputeWorkloads
{
    /// <summary>Sieve size in bytes (fits a real-mode segment).</summary>
    public const int SieveSize = 60000;

    /// <summary>CRC-32 buffer size in bytes.</summary>
    public const int CrcBufferSize = 4096;

    /// <summary>The argument of the recursive Fibonacci.</summary>
    public const int FibArgument = 24;

    /// <summary>Elements sorted per repetition.</summary>
    public const int SortCount = 700;

    // ---- sieve of Eratosthenes: the number of primes below SieveSize, summed over the repetitions ----

    /// <summary>Emits the sieve, <paramref name="repeats"/> times; EAX = primes below <see cref="SieveSize"/> times repeats.</summary>
    public static void EmitSieve(GuestAsm g, int repeats)
    {
        Assembler a = g.A;
        Label rep = a.CreateLabel(), outer = a.CreateLabel(), inner = a.CreateLabel(), next = a.CreateLabel(), done = a.CreateLabel();
        a.mov(g.Var(0), repeats);
        a.mov(g.Var(1), 0);
        a.Label(ref rep);
        a.xor(eax, eax);
        g.LoadPtr(Ptr.P1, 0);
        a.mov(ecx, SieveSize);
        a.rep.stosb(); // ES:(E/R)DI; in real mode ES = data segment, CX = the size
        a.mov(ecx, 2);
        a.xor(ebp, ebp);
        a.Label(ref outer);
        a.cmp(ecx, SieveSize);
        a.jae(done);
        g.PtrFrom(Ptr.P0, ecx);
        a.cmp(g.Byte(Ptr.P0), 0);
        a.jne(next);
        a.inc(ebp);
        a.mov(eax, ecx);
        a.imul(eax, ecx);
        a.cmp(eax, SieveSize);
        a.jae(next);
        a.Label(ref inner);
        g.PtrFrom(Ptr.P1, eax);
        a.mov(g.Byte(Ptr.P1), 1);
        a.add(eax, ecx);
        a.cmp(eax, SieveSize);
        a.jb(inner);
        a.Label(ref next);
        a.inc(ecx);
        a.jmp(outer);
        a.Label(ref done);
        a.add(g.Var(1), ebp);
        a.dec(g.Var(0));
        a.jnz(rep);
        a.mov(eax, g.Var(1));
    }

    /// <summary>Trial division (a different algorithm from the guest's sieve).</summary>
    public static uint ExpectedSieve(int repeats)
    {
        uint count = 0;
        for (int n = 2; n < SieveSize; n++)
        {
            bool prime = true;
            for (int d = 2; d * d <= n; d++)
            {
                if (n % d == 0)
                {
                    prime = false;
                    break;
                }
            }

            if (prime)
            {
                count++;
            }
        }

        return unchecked(count * (uint)repeats);
    }

    // ---- bitwise CRC-32 (reflected, 0xEDB88320) of an LCG-filled buffer, chained over the repetitions ----

    /// <summary>Emits the buffer fill and <paramref name="repeats"/> chained bitwise CRC-32 passes; EAX = the CRC.</summary>
    public static void EmitCrc32(GuestAsm g, int repeats)
    {
        Assembler a = g.A;
        Label gen = a.CreateLabel(), rep = a.CreateLabel(), nextByte = a.CreateLabel(), bit = a.CreateLabel(), noXor = a.CreateLabel();
        g.LoadPtr(Ptr.P0, 0);
        a.mov(ecx, CrcBufferSize);
        a.mov(eax, 12345);
        a.Label(ref gen);
        a.imul(eax, eax, 1103515245);
        a.add(eax, 12345);
        a.mov(edx, eax);
        a.shr(edx, 16);
        a.mov(g.Byte(Ptr.P0), dl);
        g.AddPtr(Ptr.P0, 1);
        a.dec(ecx);
        a.jnz(gen);

        a.mov(g.Var(0), repeats);
        a.mov(edx, -1);
        a.Label(ref rep);
        g.LoadPtr(Ptr.P0, 0);
        a.mov(ecx, CrcBufferSize);
        a.Label(ref nextByte);
        a.movzx(eax, g.Byte(Ptr.P0));
        g.AddPtr(Ptr.P0, 1);
        a.xor(edx, eax);
        a.mov(ebp, 8);
        a.Label(ref bit);
        a.shr(edx, 1);
        a.jnc(noXor);
        a.xor(edx, unchecked((int)0xEDB8_8320));
        a.Label(ref noXor);
        a.dec(ebp);
        a.jnz(bit);
        a.dec(ecx);
        a.jnz(nextByte);
        a.dec(g.Var(0));
        a.jnz(rep);
        a.not(edx);
        a.mov(eax, edx);
    }

    /// <summary>The buffer the guest fills.</summary>
    public static byte[] CrcBuffer()
    {
        var buffer = new byte[CrcBufferSize];
        uint x = 12345;
        for (int i = 0; i < buffer.Length; i++)
        {
            x = unchecked((x * 1103515245) + 12345);
            buffer[i] = (byte)(x >> 16);
        }

        return buffer;
    }

    /// <summary>Table-driven CRC-32 (a different algorithm from the guest's bitwise loop) of the buffer repeated.</summary>
    public static uint ExpectedCrc32(int repeats)
    {
        byte[] buffer = CrcBuffer();
        uint crc = uint.MaxValue;
        for (int r = 0; r < repeats; r++)
        {
            crc = Crc32Table.Update(crc, buffer);
        }

        return ~crc;
    }

    // ---- recursive Fibonacci: call/ret and the stack ----

    /// <summary>Emits <paramref name="repeats"/> calls of recursive fib(<see cref="FibArgument"/>); EAX = the sum.</summary>
    public static void EmitFib(GuestAsm g, int repeats)
    {
        Assembler a = g.A;
        Label fib = a.CreateLabel(), rep = a.CreateLabel(), leaf = a.CreateLabel(), over = a.CreateLabel();
        a.mov(g.Var(0), repeats);
        a.mov(g.Var(1), 0);
        a.Label(ref rep);
        a.mov(eax, FibArgument);
        a.call(fib);
        a.add(g.Var(1), eax);
        a.dec(g.Var(0));
        a.jnz(rep);
        a.mov(eax, g.Var(1));
        a.jmp(over);

        // fib: EAX = n in, EAX = fib(n) out; ECX clobbered.
        a.Label(ref fib);
        a.cmp(eax, 2);
        a.jb(leaf);
        g.Push(eax);
        a.dec(eax);
        a.call(fib);
        g.Pop(ecx);
        g.Push(eax);
        a.mov(eax, ecx);
        a.sub(eax, 2);
        a.call(fib);
        g.Pop(ecx);
        a.add(eax, ecx);
        a.Label(ref leaf);
        a.ret();
        a.Label(ref over);
    }

    /// <summary>Iterative Fibonacci times the repetitions.</summary>
    public static uint ExpectedFib(int repeats)
    {
        uint x = 0, y = 1;
        for (int i = 0; i < FibArgument; i++)
        {
            (x, y) = (y, unchecked(x + y));
        }

        return unchecked(x * (uint)repeats);
    }

    // ---- insertion sort of LCG values (unsigned), folded into a rotate-xor hash over every repetition ----

    /// <summary>Emits <paramref name="repeats"/> fill-sort-hash rounds; EAX = the hash.</summary>
    public static void EmitSort(GuestAsm g, int repeats)
    {
        Assembler a = g.A;
        Label rep = a.CreateLabel(), gen = a.CreateLabel(), outer = a.CreateLabel(), inner = a.CreateLabel();
        Label place = a.CreateLabel(), hash = a.CreateLabel();
        const int end = SortCount * 4;
        a.mov(g.Var(0), repeats);
        a.mov(g.Var(1), 1); // LCG state
        a.mov(g.Var(2), 0); // hash
        a.Label(ref rep);
        g.LoadPtr(Ptr.P0, 0);
        a.mov(ecx, SortCount);
        a.mov(eax, g.Var(1));
        a.Label(ref gen);
        a.imul(eax, eax, 1664525);
        a.add(eax, 1013904223);
        a.mov(g.Dword(Ptr.P0), eax);
        g.AddPtr(Ptr.P0, 4);
        a.dec(ecx);
        a.jnz(gen);
        a.mov(g.Var(1), eax);

        g.LoadPtr(Ptr.P0, 4);
        a.Label(ref outer);
        a.mov(edx, g.Dword(Ptr.P0)); // key = a[i]
        g.MovPtr(Ptr.P1, Ptr.P0);
        a.Label(ref inner);
        g.CmpPtr(Ptr.P1, 0);
        a.je(place);
        a.mov(eax, g.Dword(Ptr.P1, -4));
        a.cmp(eax, edx);
        a.jbe(place);
        a.mov(g.Dword(Ptr.P1), eax);
        g.AddPtr(Ptr.P1, -4);
        a.jmp(inner);
        a.Label(ref place);
        a.mov(g.Dword(Ptr.P1), edx);
        g.AddPtr(Ptr.P0, 4);
        g.CmpPtr(Ptr.P0, end);
        a.jb(outer);

        g.LoadPtr(Ptr.P0, 0);
        a.mov(ecx, SortCount);
        a.mov(eax, g.Var(2));
        a.Label(ref hash);
        a.rol(eax, 5);
        a.xor(eax, g.Dword(Ptr.P0));
        g.AddPtr(Ptr.P0, 4);
        a.dec(ecx);
        a.jnz(hash);
        a.mov(g.Var(2), eax);
        a.dec(g.Var(0));
        a.jnz(rep);
        a.mov(eax, g.Var(2));
    }

    /// <summary>The same rounds with <see cref="Array.Sort(Array)"/> (introsort, not insertion sort).</summary>
    public static uint ExpectedSort(int repeats)
    {
        uint state = 1, hash = 0;
        var values = new uint[SortCount];
        for (int r = 0; r < repeats; r++)
        {
            for (int i = 0; i < values.Length; i++)
            {
                state = unchecked((state * 1664525) + 1013904223);
                values[i] = state;
            }

            Array.Sort(values);
            foreach (uint v in values)
            {
                hash = uint.RotateLeft(hash, 5) ^ v;
            }
        }

        return hash;
    }
}

/// <summary>Table-driven reflected CRC-32 (polynomial 0xEDB88320), checked against the standard check value.</summary>
public static class Crc32Table
{
    private static readonly uint[] s_table = BuildTable();

    /// <summary>Continues a CRC (pre-inverted state) over <paramref name="data"/>.</summary>
    public static uint Update(uint state, ReadOnlySpan<byte> data)
    {
        foreach (byte b in data)
        {
            state = s_table[(state ^ b) & 0xFF] ^ (state >> 8);
        }

        return state;
    }

    /// <summary>Throws unless CRC-32("123456789") is 0xCBF43926, the published check value.</summary>
    public static void SelfCheck()
    {
        uint crc = ~Update(uint.MaxValue, "123456789"u8);
        if (crc != 0xCBF4_3926)
        {
            throw new InvalidOperationException($"The host CRC-32 is wrong: 0x{crc:x8} for \"123456789\".");
        }
    }

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1;
            }

            table[i] = c;
        }

        return table;
    }
}
