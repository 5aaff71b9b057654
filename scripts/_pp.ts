import pino from 'pino';
import pretty from 'pino-pretty';
const stream = pretty({ destination: 2, sync: true, colorize: process.argv[2] === 'c', translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true });
const log = pino({ level: 'info', base: { pid: process.pid } }, stream);
log.info({ worker: 'w-1', concurrency: 2 }, 'worker started');
log.warn({ runId: 'abc', err: Object.assign(new Error('boom'), { code: 'X' }) }, 'heartbeat failed');
const { stack: _s, ...rest } = pino.stdSerializers.err(new Error('no stack'));
log.error({ err: rest }, 'without stack');
log.child({ component: 'http' }).info({ req: { method: 'GET', url: '/x' } }, 'request');
