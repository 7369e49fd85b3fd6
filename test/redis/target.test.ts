import { describe, expect, it } from 'vitest';
import { isClusterNode, nodeAddress, nodeUrl, parseRedisTarget } from '../../src/redis/target.js';

describe('Redis URLs: one node or a cluster by its seed nodes', () => {
  it('reads one node as itself', () => {
    expect(parseRedisTarget('redis://127.0.0.1:6379/2')).toEqual({
      kind: 'node',
      url: 'redis://127.0.0.1:6379/2',
    });
    expect(parseRedisTarget('rediss://user:pw@cache.example:6380').kind).toBe('node');
  });

  it('reads a comma-separated host list as cluster seed nodes, credentials and scheme for each', () => {
    expect(parseRedisTarget('rediss://u:p@10.0.0.1:7000,10.0.0.2:7001')).toEqual({
      kind: 'cluster',
      nodes: ['rediss://u:p@10.0.0.1:7000', 'rediss://u:p@10.0.0.2:7001'],
    });
    expect(parseRedisTarget('redis://a:1,b:2/0').kind).toBe('cluster');
  });

  it.each([
    ['http://127.0.0.1:6379', /redis:\/\/ or rediss:\/\//],
    ['redis://a:1,b:2/3', /only database 0/],
    ['redis://a:1,b', /needs host:port/],
    ['redis://a:1,,b:2', /seed node/],
    ['redis://', /redis:\/\/ or rediss:\/\//],
  ])('refuses %s with a message that says why', (url, why) => {
    expect(() => parseRedisTarget(url)).toThrow(why);
  });

  it('names nodes as the cluster does, and builds their URLs with the seed credentials', () => {
    expect(nodeAddress('redis://u:p@10.0.0.1:7000')).toBe('10.0.0.1:7000');
    expect(nodeUrl('rediss://u:p@10.0.0.1:7000', '10.0.0.9:7005')).toBe(
      'rediss://u:p@10.0.0.9:7005',
    );
    expect(nodeUrl('redis://10.0.0.1:7000', '10.0.0.9:7005')).toBe('redis://10.0.0.9:7005');
  });
});

describe('a node with cluster mode on', () => {
  it('is told from INFO cluster', () => {
    expect(isClusterNode('# Cluster\r\ncluster_enabled:1\r\n')).toBe(true);
    expect(isClusterNode('# Cluster\r\ncluster_enabled:0\r\n')).toBe(false);
    expect(isClusterNode('')).toBe(false);
  });
});
