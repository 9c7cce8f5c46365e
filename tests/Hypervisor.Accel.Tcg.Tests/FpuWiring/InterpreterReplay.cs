using System.Globalization;
using System.Text;
using Hypervisor.Accel.Tcg.Tests.Guests;
using Hypervisor.Accel.Tcg.Tests.Native;
using Hypervisor.Core.Machine;
using Hypervisor.Core.Memory;
using Hypervisor.Core.Registers;

namespace Hypervisor.Accel.Tcg.Tests.FpuWiring;

/// <summary>
/// Replays on the interpreter a snippet that already ran natively from the same register file, and describes every
/// difference in the scratch block, RAX (and optionally RCX) and the status flags. Shared by the SSE and x87 suites.
/// On a machine with the JIT (the suites' <c>jit</c> fixtures) the snippet must also have run as translated code.
/// </summary>
internal static class InterpreterReplay
{
    private const ulong StatusFlags = 0x8D5; // CF PF AF ZF SF OF

    /// <summary>Null when the interpreter matches the host; otherwise the differences.</summary>
    internal static string? Compare(TestMachine machine, ulong code, ulong haltedAt, ulong guestScratch, ulong guestStack,
        RegisterFile input, RegisterFile native, (string What, int At, int Length)[] regions, bool compareRcx)
    {
        GeneralRegisters g = default;
        g.Rax = input.Rax;
        g.Rcx = input.Rcx;
        g.Rsi = guestScratch;
        g.Rsp = guestStack;
        g.Rip = code;
        g.Rflags = input.Rflags;
        machine.Memory.Write(new GuestAddress(guestScratch), input.Scratch);
        machine.Vcpu.SetGeneralRegisters(g);
        long jitBefore = machine.Cpu.Jit?.Statistics.JitInstructions ?? 0;
        VcpuExit exit = machine.Run(64);
        GeneralRegisters guest = machine.Vcpu.GetGeneralRegisters();
        if (exit.Reason != VcpuExitReason.Halted || guest.Rip != haltedAt)
        {
            return $" the interpreter stopped with {exit.Reason} at RIP {guest.Rip:X} ({exit})";
        }

        if (machine.Cpu.Jit is { } jit && jit.Statistics.JitInstructions == jitBefore)
        {
            return " the snippet did not run as translated code (jit=on, threshold 0)";
        }

        var scratch = new byte[64];
        machine.Memory.Read(new GuestAddress(guestScratch), scratch);
        var problems = new StringBuilder();
        ReadOnlySpan<byte> host = native.Scratch;
        foreach ((string what, int at, int length) in regions)
        {
            if (!host.Slice(at, length).SequenceEqual(scratch.AsSpan(at, length)))
            {
                problems.Append(CultureInfo.InvariantCulture,
                    $" {what} host {Convert.ToHexString(host.Slice(at, length))} interpreter {Convert.ToHexString(scratch, at, length)};");
            }
        }

        if (native.Rax != guest.Rax)
        {
            problems.Append(CultureInfo.InvariantCulture, $" rax host {native.Rax:X16} interpreter {guest.Rax:X16};");
        }

        if (compareRcx && native.Rcx != guest.Rcx)
        {
            problems.Append(CultureInfo.InvariantCulture, $" rcx host {native.Rcx:X16} interpreter {guest.Rcx:X16};");
        }

        if (((native.Rflags ^ guest.Rflags) & StatusFlags) != 0)
        {
            problems.Append(CultureInfo.InvariantCulture,
                $" flags host {native.Rflags & StatusFlags:X3} interpreter {guest.Rflags & StatusFlags:X3};");
        }

        return problems.Length == 0 ? null : problems.ToString();
    }
}
