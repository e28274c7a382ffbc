import {inspect} from 'node:util'
import {describe, expect, it} from 'vitest'

import {childEnv, redact, redactCommand, registerSecret, SECRET_ENV} from '../../../src/lib/redact.js'

describe('redact', () => {
  describe('childEnv', () => {
    it('drops every secret variable and keeps the rest', () => {
      const env = Object.fromEntries([...SECRET_ENV.map((name) => [name, `value of ${name}`]), ['PATH', '/usr/bin']])
      expect(childEnv(env)).toEqual({PATH: '/usr/bin'})
      // The caller's object is left alone.
      expect(Object.keys(env)).toHaveLength(SECRET_ENV.length + 1)
    })

    it('lists the variables that carry our secrets, cloud credentials included', () => {
      expect([...SECRET_ENV].sort()).toEqual(
        [
          'AWS_ACCESS_KEY_ID',
          'AWS_SECRET_ACCESS_KEY',
          'AWS_SESSION_TOKEN',
          'MOCTL_BR_IDENTITY',
          'MOCTL_BR_PASSPHRASE',
          'MOCTL_BR_WRITER_KEY',
          'MO_PASSWORD',
        ].sort(),
      )
    })
  })

  describe('redact', () => {
    it('hides the values of secret variables, trimmed or not, and age secret keys', () => {
      const env = {MO_PASSWORD: 'pw-in-env', MOCTL_BR_PASSPHRASE: 'phrase from a file\n', PATH: '/usr/bin'}
      expect(redact('login with pw-in-env; phrase from a file; /usr/bin', env)).toBe('login with ***; ***; /usr/bin')
      expect(redact('key AGE-SECRET-KEY-1QQQQQQQQQ7ZZZ and age-secret-key-1abc', {})).toBe('key *** and ***')
    })

    it('hides registered secrets, also as util.inspect and JSON escape them in a debug line', () => {
      const secret = String.raw`it's-a-Registered\secret`
      registerSecret(secret)
      const out = redact(`raw ${secret}; inspect ${inspect(secret)}; json ${JSON.stringify(secret)}`, {})
      expect(out).toBe('raw ***; inspect "***"; json "***"')
      registerSecret('')
      expect(redact('nothing to hide', {})).toBe('nothing to hide')
    })
  })

  describe('redactCommand', () => {
    it.each([
      ['mysqladmin -uroot -pS3cret shutdown', 'mysqladmin -uroot -p*** shutdown'],
      ["mysqladmin -u root '-pS3cret' shutdown", "mysqladmin -u root '-p***' shutdown"],
      ['mysql --password=S3cret -e "shutdown"', 'mysql --password=*** -e "shutdown"'],
      ['mysql --password S3cret', 'mysql --password ***'],
      ["tool --passphrase 'two words'", 'tool --passphrase ***'],
      ['MYSQL_PWD=S3cret mysqladmin shutdown', 'MYSQL_PWD=*** mysqladmin shutdown'],
      ['PASSWORD="a b" ./stop.sh', 'PASSWORD=*** ./stop.sh'],
      ['AWS_SECRET_ACCESS_KEY=abc aws s3 ls', 'AWS_SECRET_ACCESS_KEY=*** aws s3 ls'],
      ['curl https://admin:S3cret@host/stop', 'curl https://admin:***@host/stop'],
      // Nothing secret: left as it is.
      ['mo_ctl stop', 'mo_ctl stop'],
      ['mkdir -p /x && systemctl stop matrixone', 'mkdir -p /x && systemctl stop matrixone'],
      [
        'tool --password-file /root/pw --passphrase-file /root/pp',
        'tool --password-file /root/pw --passphrase-file /root/pp',
      ],
    ])('%s', (command, shown) => {
      expect(redactCommand(command, {})).toBe(shown)
    })

    it('also hides the secrets it knows by value', () => {
      expect(redactCommand('./stop.sh --user root --auth hunter2-Value', {MO_PASSWORD: 'hunter2-Value'})).toBe(
        './stop.sh --user root --auth ***',
      )
    })
  })
})
