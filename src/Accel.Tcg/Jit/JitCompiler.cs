using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Hypervisor.Accel.Tcg.Decoding;
using Iced.Intel;

namespace Hypervisor.Accel.Tcg.Jit;

/// <summary>
/// The background compiler shared by all vCPUs of the process: one thread below normal priority that emits the IL of
/// queued regions and has the runtime compile it (<see cref="JitTranslator.Translate"/>), so that a vCPU never waits
/// for a translation: it keeps interpreting the block until the translation is ready and installs it at the block's
/// next execution (<see cref="JitEngine.Lookup"/>). Each engine bounds its own queue (<see cref="JitOptions.MaxQueued"/>).
/// </summary>
internal static class JitCompiler
{
    private static readonly BlockingCollection<Job> s_queue = [];
    private static readonly Lazy<Thread?> s_thread = new(Start);

    /// <summary>Whether the compiler thread runs (false if it could not be started; engines then translate inline).</summary>
    public static bool Available => s_thread.Value is not null;

    /// <summary>Queues <paramref name="job"/>; its engine counted it in its queue already.</summary>
    public static void Enqueue(Job job) => s_queue.Add(job);

    private static Thread? Start()
    {
        try
        {
            var t = new Thread(Run) { IsBackground = true, Name = "tcg JIT compiler", Priority = ThreadPriority.BelowNormal };
            t.Start();
            return t;
        }
        catch (OutOfMemoryException)
        {
            return null;
        }
        catch (ThreadStartException)
        {
            return null;
        }
    }

    private static void Run()
    {
        WarmUp();
        foreach (Job job in s_queue.GetConsumingEnumerable())
        {
            job.Execute();
        }
    }

    /// <summary>
    /// Translates two small synthetic regions (64- and 32-bit code: memory, ALU, branches, stack) and throws them away,
    /// once per process, before the first real job: the translator's own code, Reflection.Emit and the runtime's
    /// compiler are then warm when the guest's first hot loop is queued (a cold first translation took several times
    /// as long as the next ones, all of it spent while the vCPU interprets the loop).
    /// </summary>
    private static void WarmUp()
    {
        try
        {
            foreach (int bitness in (int[])[64, 32])
            {
                var a = new Assembler(bitness);
                Label top = a.CreateLabel(), sub = a.CreateLabel();
                a.Label(ref top);
                if (bitness == 64)
                {
                    a.mov(AssemblerRegisters.eax, AssemblerRegisters.__dword_ptr[AssemblerRegisters.rbx + 8]);
                    a.add(AssemblerRegisters.rax, AssemblerRegisters.rcx);
                    a.mov(AssemblerRegisters.__byte_ptr[AssemblerRegisters.rdi + AssemblerRegisters.rax], 1);
                    a.push(AssemblerRegisters.rax);
                    a.call(sub);
                    a.pop(AssemblerRegisters.rdx);
                }
                else
                {
                    a.mov(AssemblerRegisters.eax, AssemblerRegisters.__dword_ptr[AssemblerRegisters.ebx + 8]);
                    a.add(AssemblerRegisters.eax, AssemblerRegisters.ecx);
                    a.mov(AssemblerRegisters.__byte_ptr[AssemblerRegisters.edi + AssemblerRegisters.eax], 1);
                    a.push(AssemblerRegisters.eax);
                    a.call(sub);
                    a.pop(AssemblerRegisters.edx);
                }

                a.inc(AssemblerRegisters.esi);
                a.shr(AssemblerRegisters.edx, 1);
                a.imul(AssemblerRegisters.edx, AssemblerRegisters.esi);
                a.cmp(AssemblerRegisters.esi, 100);
                a.jb(top);
                a.Label(ref sub);
                a.dec(AssemblerRegisters.ecx);
                a.ret();
                const ulong Base = 0x1000;
                var writer = new CodeWriterImpl();
                a.Assemble(writer, Base);
                var decoder = Decoder.Create(bitness, new ByteArrayCodeReader(writer.ToArray()));
                decoder.IP = Base;
                var block = new DecodedBlock { Rip = Base, PhysicalAddress = Base, Page = Base >> 12, Bitness = bitness, Cached = true };
                while (block.Count < DecodedBlock.MaxInstructions && decoder.IP < Base + (ulong)writer.Count)
                {
                    decoder.Decode(out block.Instructions[block.Count++]);
                }

                _ = JitTranslator.Translate([block], bitness == 64 ? 64 : 32);
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Only a warm-up: a translator bug shows on the first real translation, where it is reported.
        }
    }

    private sealed class CodeWriterImpl : CodeWriter
    {
        private readonly List<byte> _bytes = [];

        public int Count => _bytes.Count;

        public override void WriteByte(byte value) => _bytes.Add(value);

        public byte[] ToArray() => [.. _bytes];
    }

    /// <summary>One region to translate: written by the compiler thread, read by the vCPU once <see cref="Done"/> is set.</summary>
    internal sealed class Job(List<DecodedBlock> blocks, int stackBits, JitEngine engine)
    {
        private volatile bool _done;
        private volatile bool _cancelled;

        /// <summary>Whether the compiler finished with the job (then Result, Error and Ticks are final).</summary>
        public bool Done => _done;

        public JitRegion? Result { get; private set; }

        public ExceptionDispatchInfo? Error { get; private set; }

        public long Ticks { get; private set; }

        /// <summary>The vCPU no longer wants the result (its page changed or its entry left the cache).</summary>
        public void Cancel() => _cancelled = true;

        internal void Execute()
        {
            try
            {
                if (!_cancelled)
                {
                    long start = Stopwatch.GetTimestamp();
                    Result = JitTranslator.Translate(blocks, stackBits);
                    Ticks = Stopwatch.GetTimestamp() - start;
                }
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // A translator bug: reported on the vCPU thread when it installs the job, like an inline translation.
                Error = ExceptionDispatchInfo.Capture(ex);
            }
            finally
            {
                _done = true;
                engine.JobFinished(Ticks);
            }
        }
    }
}
